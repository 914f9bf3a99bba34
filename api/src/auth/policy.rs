//! Tiled's tag-based access policy: nodes carry access tags; a tag grants scopes to users
//! (directly, through groups, or through the tags it includes with `auto_tags`); `public`
//! tags let everyone read; each principal owns the tag `user:<id>` (`service:<uuid>`) of the
//! nodes it makes. The policy answers three questions, all from memory: which scopes a
//! caller has on a node with some tags, which tags make a child visible to a caller (the
//! filter every catalog query of the request gets, so hidden nodes are never listed,
//! counted or found), and which tags a created or changed node ends up with.
//!
//! Tiled compiles the tag definitions with a Python script into its catalog database;
//! tessera reads the same YAML at start-up (`tessera.access_tag_definitions`). Tiled's
//! `group_parser` is a Python callable, so group members are listed in that file under
//! `groups:`.

use std::collections::{BTreeMap, HashMap, HashSet};

use axum::http::StatusCode;
use serde::Deserialize;

use super::Caller;
use super::scopes::{self, Scopes};
use crate::error::ApiError;

/// The tag every caller may read.
pub const PUBLIC: &str = "public";
/// How deep `auto_tags` may nest (Tiled's limit).
const MAX_DEPTH: usize = 5;

/// The tag-definition file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definitions {
    #[serde(default)]
    pub roles: BTreeMap<String, RoleDef>,
    pub tags: BTreeMap<String, TagDef>,
    #[serde(default)]
    pub tag_owners: BTreeMap<String, Owners>,
    /// Group name to user names (Tiled's `group_parser`).
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleDef {
    pub scopes: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagDef {
    #[serde(default)]
    pub users: Vec<Grant>,
    #[serde(default)]
    pub groups: Vec<Grant>,
    #[serde(default)]
    pub auto_tags: Vec<Named>,
}

/// A user or group with a role or a list of scopes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    pub name: String,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Named {
    pub name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Owners {
    #[serde(default)]
    pub users: Vec<Named>,
    #[serde(default)]
    pub groups: Vec<Named>,
}

/// A compiled tag.
#[derive(Debug, Default)]
struct Tag {
    public: bool,
    /// User (identity id, or service UUID) to the scopes the tag gives them.
    grants: HashMap<String, Scopes>,
    owners: HashSet<String>,
}

/// Which children a caller may see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Visible {
    /// Every node (admins, or no policy).
    All,
    /// Nodes carrying at least one of these tags.
    Tags(Vec<String>),
}

/// The compiled policy.
#[derive(Debug)]
pub struct TagPolicy {
    /// The login provider whose identity ids name users.
    provider: String,
    /// Every scope the policy gives (`scopes` of its args).
    scopes: Scopes,
    tags: HashMap<String, Tag>,
    /// The root's tags (`top_level_access_tags` of the catalog).
    top_level: Vec<String>,
}

fn forbidden(detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, detail.into())
}

fn rejected(why: impl std::fmt::Display) -> ApiError {
    forbidden(format!(
        "Access policy rejects the provided access tags.\n{why}"
    ))
}

impl TagPolicy {
    /// Compiles `defs` for users of `provider`, giving at most `policy_scopes`.
    pub fn compile(
        provider: &str,
        policy_scopes: Scopes,
        defs: &Definitions,
        top_level: Vec<String>,
    ) -> Result<TagPolicy, String> {
        let roles: HashMap<&str, Scopes> = defs
            .roles
            .iter()
            .map(|(name, r)| {
                let s = Scopes::parse(&r.scopes)
                    .map_err(|bad| format!("roles.{name}: unknown scope {bad:?}"))?;
                if s.is_empty() {
                    return Err(format!("roles.{name}: give at least one scope"));
                }
                Ok((name.as_str(), s))
            })
            .collect::<Result<_, String>>()?;
        let scopes_of = |at: &str, g: &Grant| -> Result<Scopes, String> {
            let s = match (&g.role, &g.scopes) {
                (Some(role), None) => *roles
                    .get(role.as_str())
                    .ok_or_else(|| format!("{at}: unknown role {role:?}"))?,
                (None, Some(list)) if !list.is_empty() => {
                    Scopes::parse(list).map_err(|bad| format!("{at}: unknown scope {bad:?}"))?
                }
                _ => return Err(format!("{at}: give exactly one of role or scopes")),
            };
            if !policy_scopes.covers(s) {
                let extra = s.minus(policy_scopes).display();
                return Err(format!(
                    "{at}: scopes {extra} are not among the policy's scopes"
                ));
            }
            Ok(s)
        };
        let members = |group: &str| {
            defs.groups.get(group).cloned().unwrap_or_else(|| {
                tracing::warn!("access tags: group {group:?} has no members listed under groups");
                Vec::new()
            })
        };
        // Direct grants of each tag.
        let mut direct: HashMap<&str, HashMap<String, Scopes>> = HashMap::new();
        for (name, def) in &defs.tags {
            if name.eq_ignore_ascii_case(PUBLIC) {
                return Err(format!("tags.{name}: 'public' is built in"));
            }
            if name.starts_with("user:") || name.starts_with("service:") {
                return Err(format!(
                    "tags.{name}: user: and service: tags are the principals' own"
                ));
            }
            let grants = direct.entry(name.as_str()).or_default();
            for (i, u) in def.users.iter().enumerate() {
                let s = scopes_of(&format!("tags.{name}.users[{i}]"), u)?;
                let e = grants.entry(u.name.clone()).or_default();
                *e = e.with(s);
            }
            for (i, g) in def.groups.iter().enumerate() {
                let s = scopes_of(&format!("tags.{name}.groups[{i}]"), g)?;
                for user in members(&g.name) {
                    let e = grants.entry(user).or_default();
                    *e = e.with(s);
                }
            }
        }
        // auto_tags: a tag has the grants (and the publicness) of the tags it includes.
        fn reach<'a>(
            defs: &'a Definitions,
            name: &'a str,
            depth: usize,
            path: &mut Vec<&'a str>,
            out: &mut Vec<&'a str>,
        ) -> Result<(), String> {
            if depth > MAX_DEPTH {
                return Err(format!(
                    "tags.{}: auto_tags nest deeper than {MAX_DEPTH}",
                    path[0]
                ));
            }
            let Some(def) = defs.tags.get(name) else {
                return Ok(());
            };
            for next in &def.auto_tags {
                let n = next.name.as_str();
                if path.contains(&n) {
                    return Err(format!(
                        "tags.{}: auto_tags form a cycle through {n:?}",
                        path[0]
                    ));
                }
                if !n.eq_ignore_ascii_case(PUBLIC) && !defs.tags.contains_key(n) {
                    return Err(format!("tags.{name}.auto_tags: {n:?} is not a defined tag"));
                }
                out.push(n);
                path.push(n);
                reach(defs, n, depth + 1, path, out)?;
                path.pop();
            }
            Ok(())
        }
        let mut tags = HashMap::new();
        tags.insert(
            PUBLIC.to_string(),
            Tag {
                public: true,
                ..Tag::default()
            },
        );
        for name in defs.tags.keys() {
            let mut included = Vec::new();
            reach(defs, name, 1, &mut vec![name.as_str()], &mut included)?;
            let mut tag = Tag {
                public: included.iter().any(|n| n.eq_ignore_ascii_case(PUBLIC)),
                grants: direct.get(name.as_str()).cloned().unwrap_or_default(),
                owners: HashSet::new(),
            };
            for n in included {
                for (user, s) in direct.get(n).into_iter().flatten() {
                    let e = tag.grants.entry(user.clone()).or_default();
                    *e = e.with(*s);
                }
            }
            tags.insert(name.clone(), tag);
        }
        for (name, owners) in &defs.tag_owners {
            if name.starts_with("user:") || name.starts_with("service:") {
                return Err(format!(
                    "tag_owners.{name}: user: and service: tags have no owners"
                ));
            }
            let tag = tags.entry(name.clone()).or_default();
            tag.owners
                .extend(owners.users.iter().map(|u| u.name.clone()));
            for g in &owners.groups {
                tag.owners.extend(members(&g.name));
            }
        }
        Ok(TagPolicy {
            provider: provider.to_string(),
            scopes: policy_scopes,
            tags,
            top_level,
        })
    }

    /// The root's tags.
    pub fn top_level(&self) -> &[String] {
        &self.top_level
    }

    fn is_admin(caller: &Caller) -> bool {
        caller.scopes.covers(scopes::ADMIN_APIKEYS)
    }

    /// Whether the caller's key (restricted to some access tags, or not) reaches `tag`.
    fn key_reaches(caller: &Caller, tag: &str) -> bool {
        caller
            .key_tags
            .as_ref()
            .is_none_or(|tags| tags.iter().any(|t| t == tag))
    }

    /// Every tag of `tags` is one the caller's key reaches.
    fn within_key(caller: &Caller, tags: &[String]) -> Result<(), ApiError> {
        match tags.iter().find(|t| !Self::key_reaches(caller, t)) {
            Some(t) => Err(rejected(format!(
                "the API key of this request is not restricted to tag {t:?}"
            ))),
            None => Ok(()),
        }
    }

    /// The name grants are looked up by: the caller's identity at the policy's provider, or
    /// a service's UUID.
    fn identifier<'a>(&self, caller: &'a Caller) -> Option<&'a str> {
        if caller.service {
            return caller.principal.as_deref();
        }
        caller
            .identities
            .iter()
            .find(|(provider, _)| *provider == self.provider)
            .map(|(_, id)| id.as_str())
    }

    /// The caller's own tags (`user:<id>`; a service has `service:<uuid>` too).
    fn own_tags(&self, caller: &Caller) -> Vec<String> {
        match self.identifier(caller) {
            None => Vec::new(),
            Some(id) if caller.service => vec![format!("user:{id}"), format!("service:{id}")],
            Some(id) => vec![format!("user:{id}")],
        }
    }

    /// The scopes `caller` has on a node carrying `tags`.
    pub fn allowed(&self, caller: &Caller, tags: &[String]) -> Scopes {
        if Self::is_admin(caller) {
            return self.scopes;
        }
        let me = self.identifier(caller);
        let own = self.own_tags(caller);
        let mut acc = Scopes::NONE;
        for t in tags {
            if !Self::key_reaches(caller, t) {
                continue;
            }
            if own.contains(t) {
                acc = acc.with(caller.scopes.and(self.scopes));
            }
            let Some(tag) = self.tags.get(t) else {
                continue;
            };
            if tag.public {
                acc = acc.with(scopes::PUBLIC);
            }
            if let Some(s) = me.and_then(|id| tag.grants.get(id)) {
                acc = acc.with(*s);
            }
        }
        acc.and(self.scopes)
    }

    /// The tags that make a node visible to `caller` for `need` (the filter of every
    /// listing, count and lookup of the request).
    pub fn visible(&self, caller: &Caller, need: Scopes) -> Visible {
        if Self::is_admin(caller) {
            return Visible::All;
        }
        if !self.scopes.covers(need) {
            return Visible::Tags(Vec::new());
        }
        let me = self.identifier(caller);
        let mut out: Vec<String> = self
            .tags
            .iter()
            .filter(|(_, tag)| {
                (tag.public && scopes::PUBLIC.covers(need))
                    || me
                        .and_then(|id| tag.grants.get(id))
                        .is_some_and(|s| s.covers(need))
            })
            .map(|(name, _)| name.clone())
            .collect();
        if caller.scopes.and(self.scopes).covers(need) {
            out.extend(self.own_tags(caller));
        }
        out.retain(|t| Self::key_reaches(caller, t));
        out.sort();
        Visible::Tags(out)
    }

    /// The tags a node made by `caller` gets: its own tag when none are asked for; asked
    /// tags only when defined, owned by the caller (or the caller is an admin; only admins
    /// apply `public` or none) and giving the caller read and write of its metadata.
    pub fn init_tags(
        &self,
        caller: &Caller,
        asked: Option<Vec<String>>,
    ) -> Result<Vec<String>, ApiError> {
        let Some(asked) = asked else {
            // A service's node gets `service:<uuid>`, a user's `user:<id>`.
            return match self.own_tags(caller).pop() {
                Some(t) => {
                    let tags = vec![t];
                    Self::within_key(caller, &tags)?;
                    Ok(tags)
                }
                None if Self::is_admin(caller) => Ok(Vec::new()),
                None => Err(rejected(format!(
                    "the caller has no identity at provider {:?} to tag the node with",
                    self.provider
                ))),
            };
        };
        Self::within_key(caller, &asked)?;
        let mut tags = self.checked(caller, &asked, |_| true)?;
        tags.sort();
        tags.dedup();
        Ok(tags)
    }

    /// The tags a node carrying `current` gets when `caller` asks for `asked`.
    pub fn modify_tags(
        &self,
        caller: &Caller,
        current: &[String],
        asked: Vec<String>,
    ) -> Result<Vec<String>, ApiError> {
        let mut sorted_current = current.to_vec();
        sorted_current.sort();
        let mut sorted_asked = asked.clone();
        sorted_asked.sort();
        sorted_asked.dedup();
        if sorted_asked == sorted_current {
            return Ok(sorted_current);
        }
        Self::within_key(caller, &asked)?;
        let removed: Vec<String> = current
            .iter()
            .filter(|t| !sorted_asked.contains(t))
            .cloned()
            .collect();
        Self::within_key(caller, &removed)?;
        let tags = self.checked(caller, &asked, |t| !current.iter().any(|c| c == t))?;
        let own = self.own_tags(caller);
        for t in current.iter().filter(|t| !tags.contains(t)) {
            if own.contains(t) {
                continue;
            }
            if t == PUBLIC {
                if !Self::is_admin(caller) {
                    return Err(rejected("only an admin may remove the public tag"));
                }
                continue;
            }
            if !self.tags.contains_key(t) {
                return Err(rejected(format!("tag {t:?} is not defined")));
            }
            if !Self::is_admin(caller) && !self.owns(caller, t) {
                return Err(rejected(format!("the caller does not own tag {t:?}")));
            }
        }
        let mut tags = tags;
        tags.sort();
        tags.dedup();
        Ok(tags)
    }

    /// The rules every asked tag list follows: not empty (but for admins), no principal
    /// tags, `public` only from admins, the tags `new` says are being applied defined and
    /// owned, and (for others than admins) read and write of the metadata.
    fn checked(
        &self,
        caller: &Caller,
        asked: &[String],
        new: impl Fn(&str) -> bool,
    ) -> Result<Vec<String>, ApiError> {
        let admin = Self::is_admin(caller);
        if asked.is_empty() && !admin {
            return Err(rejected("only an admin may give a node no access tags"));
        }
        let mut out = Vec::with_capacity(asked.len());
        let mut granted = Scopes::NONE;
        let me = self.identifier(caller);
        for t in asked {
            if t.starts_with("user:") || t.starts_with("service:") {
                return Err(rejected(format!("{t:?}: principal tags cannot be applied")));
            }
            if t.eq_ignore_ascii_case(PUBLIC) {
                if !admin {
                    return Err(rejected("only an admin may apply the public tag"));
                }
                out.push(PUBLIC.to_string());
                continue;
            }
            if new(t) {
                self.may_apply(caller, t)?;
            }
            if let Some(s) = me.and_then(|id| self.tags.get(t)?.grants.get(id)) {
                granted = granted.with(*s);
            }
            out.push(t.clone());
        }
        let minimum = scopes::READ_METADATA.with(scopes::WRITE_METADATA);
        if !admin && !granted.covers(minimum) {
            return Err(rejected(
                "these tags do not confer the minimum scopes (read:metadata, write:metadata) \
                 on the caller",
            ));
        }
        Ok(out)
    }

    fn owns(&self, caller: &Caller, tag: &str) -> bool {
        let me = self.identifier(caller);
        self.tags
            .get(tag)
            .is_some_and(|t| me.is_some_and(|id| t.owners.contains(id)))
    }

    /// `caller` may put `tag` on a node: it is defined, and the caller owns it or is an
    /// admin.
    fn may_apply(&self, caller: &Caller, tag: &str) -> Result<(), ApiError> {
        if !self.tags.contains_key(tag) {
            return Err(rejected(format!(
                "Cannot apply access tags that are not defined: {tag:?}"
            )));
        }
        if !Self::is_admin(caller) && !self.owns(caller, tag) {
            return Err(rejected(format!("the caller does not own tag {tag:?}")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFS: &str = "
roles:
  reader: {scopes: [read:metadata, read:data]}
  writer: {scopes: [read:metadata, read:data, write:metadata, write:data, create:node]}
tags:
  a: {users: [{name: alice, role: writer}], groups: [{name: team, role: reader}]}
  b: {auto_tags: [{name: a}]}
  c: {auto_tags: [{name: b}, {name: public}]}
tag_owners:
  a: {users: [{name: alice}]}
groups:
  team: [bob]
";

    fn policy(defs: &str) -> Result<TagPolicy, String> {
        let defs: Definitions = serde_norway::from_str(defs).map_err(|e| e.to_string())?;
        let all = Scopes::parse(&scopes::NAMES[..16]).unwrap_or_default();
        TagPolicy::compile("toy", all, &defs, vec![PUBLIC.into()])
    }

    fn user(id: &str, scopes: Scopes) -> Caller {
        Caller {
            principal: Some(format!("uuid-{id}")),
            scopes,
            api_key: None,
            service: false,
            identities: vec![("toy".into(), id.into())],
            key_tags: None,
        }
    }

    #[test]
    fn grants_flow_through_groups_and_auto_tags() -> Result<(), String> {
        let p = policy(DEFS)?;
        let (alice, bob) = (user("alice", scopes::USER), user("bob", scopes::USER));
        let writer = Scopes::parse(&[
            "read:metadata",
            "read:data",
            "write:metadata",
            "write:data",
            "create:node",
        ])?;
        assert_eq!(p.allowed(&alice, &["a".into()]), writer);
        assert_eq!(p.allowed(&bob, &["a".into()]), scopes::PUBLIC);
        // b includes a's grants; c includes b's, and is public through its auto_tags.
        assert_eq!(p.allowed(&alice, &["c".into()]), writer);
        let nobody = user("mallory", scopes::USER);
        assert_eq!(p.allowed(&nobody, &["c".into()]), scopes::PUBLIC);
        assert_eq!(p.allowed(&nobody, &["a".into()]), Scopes::NONE);
        // Anonymous callers see public tags only; their own tag is the caller's whole scopes.
        assert_eq!(
            p.visible(&Caller::anonymous(scopes::PUBLIC), scopes::READ_METADATA),
            Visible::Tags(vec!["c".into(), "public".into()])
        );
        assert_eq!(p.allowed(&alice, &["user:alice".into()]), scopes::USER);
        assert_eq!(p.allowed(&bob, &["user:alice".into()]), Scopes::NONE);
        Ok(())
    }

    #[test]
    fn bad_definitions_are_refused_with_where() {
        for (defs, want) in [
            (
                "tags: {a: {users: [{name: x, role: nobody}]}}",
                "unknown role",
            ),
            (
                "tags: {a: {auto_tags: [{name: b}]}, b: {auto_tags: [{name: a}]}}",
                "cycle",
            ),
            ("tags: {a: {auto_tags: [{name: zzz}]}}", "not a defined tag"),
            ("tags: {Public: {}}", "built in"),
            (
                "tags: {a: {users: [{name: x, role: r, scopes: [read:data]}]}}",
                "exactly one",
            ),
            (
                "tags: {a: {users: [{name: x, scopes: [fly]}]}}",
                "unknown scope",
            ),
        ] {
            let err = policy(defs).unwrap_err();
            assert!(err.contains(want), "{defs}: {err}");
        }
    }

    #[test]
    fn tags_are_applied_as_tileds_rules_say() -> Result<(), String> {
        let p = policy(DEFS)?;
        let alice = user("alice", scopes::USER);
        let admin = user("root", scopes::ADMIN);
        assert_eq!(
            p.init_tags(&alice, None).map_err(|e| e.detail)?,
            vec!["user:alice"]
        );
        assert_eq!(
            p.init_tags(&alice, Some(vec!["a".into()]))
                .map_err(|e| e.detail)?,
            vec!["a"]
        );
        for asked in [vec!["b"], vec!["public"], vec!["user:bob"], vec![]] {
            let asked: Vec<String> = asked.into_iter().map(String::from).collect();
            let e = p.init_tags(&alice, Some(asked.clone())).unwrap_err();
            assert_eq!(e.status.as_u16(), 403, "{asked:?}");
        }
        assert_eq!(
            p.init_tags(&admin, Some(vec!["PUBLIC".into()]))
                .map_err(|e| e.detail)?,
            vec!["public"]
        );
        // Unchanged tags pass; alice may move her own node to a tag she owns, not remove
        // public, which only admins may.
        let own = vec!["user:alice".to_string()];
        assert_eq!(
            p.modify_tags(&alice, &own, own.clone())
                .map_err(|e| e.detail)?,
            own
        );
        assert_eq!(
            p.modify_tags(&alice, &own, vec!["a".into()])
                .map_err(|e| e.detail)?,
            vec!["a"]
        );
        let public = vec!["public".to_string(), "a".to_string()];
        assert!(p.modify_tags(&alice, &public, vec!["a".into()]).is_err());
        assert!(p.modify_tags(&admin, &public, vec!["a".into()]).is_ok());
        Ok(())
    }
}
