//! Tiled's scopes (what a caller may do) as a bit set, the scope sets of its roles, and the
//! scopes each route requires.

use axum::http::Method;

use crate::routes::Endpoint;

/// A set of scopes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Scopes(u32);

/// Every scope name, in bit order. `inherit` is the API-key-only meta-scope: all scopes of
/// the owning principal, resolved when the key is used.
pub const NAMES: [&str; 17] = [
    "read:metadata",
    "read:data",
    "write:metadata",
    "write:data",
    "delete:revision",
    "delete:node",
    "create:node",
    "register",
    "metrics",
    "create:apikeys",
    "revoke:apikeys",
    "admin:apikeys",
    "read:principals",
    "write:principals",
    "read:webhooks",
    "write:webhooks",
    "inherit",
];

const fn bit(i: usize) -> Scopes {
    Scopes(1 << i)
}

pub const READ_METADATA: Scopes = bit(0);
pub const READ_DATA: Scopes = bit(1);
pub const WRITE_METADATA: Scopes = bit(2);
pub const WRITE_DATA: Scopes = bit(3);
pub const DELETE_REVISION: Scopes = bit(4);
pub const DELETE_NODE: Scopes = bit(5);
pub const CREATE_NODE: Scopes = bit(6);
pub const REGISTER: Scopes = bit(7);
pub const METRICS: Scopes = bit(8);
pub const CREATE_APIKEYS: Scopes = bit(9);
pub const REVOKE_APIKEYS: Scopes = bit(10);
pub const ADMIN_APIKEYS: Scopes = bit(11);
pub const READ_PRINCIPALS: Scopes = bit(12);
pub const WRITE_PRINCIPALS: Scopes = bit(13);
pub const READ_WEBHOOKS: Scopes = bit(14);
pub const WRITE_WEBHOOKS: Scopes = bit(15);
pub const INHERIT: Scopes = bit(16);

/// Anonymous callers of a server that allows anonymous access.
pub const PUBLIC: Scopes = READ_METADATA.with(READ_DATA);

/// The holder of the single-user API key.
pub const SINGLE_USER: Scopes = PUBLIC
    .with(WRITE_METADATA)
    .with(WRITE_DATA)
    .with(DELETE_REVISION)
    .with(DELETE_NODE)
    .with(CREATE_NODE)
    .with(REGISTER)
    .with(METRICS)
    .with(READ_WEBHOOKS)
    .with(WRITE_WEBHOOKS);

/// Role `user`: reads and writes data, manages its own API keys.
pub const USER: Scopes = PUBLIC
    .with(CREATE_NODE)
    .with(WRITE_METADATA)
    .with(WRITE_DATA)
    .with(DELETE_REVISION)
    .with(DELETE_NODE)
    .with(CREATE_APIKEYS)
    .with(REVOKE_APIKEYS);

/// Role `admin`: everything but webhooks' delivery.
pub const ADMIN: Scopes = PUBLIC
    .with(CREATE_NODE)
    .with(REGISTER)
    .with(WRITE_METADATA)
    .with(WRITE_DATA)
    .with(DELETE_REVISION)
    .with(DELETE_NODE)
    .with(ADMIN_APIKEYS)
    .with(READ_PRINCIPALS)
    .with(WRITE_PRINCIPALS)
    .with(METRICS)
    .with(READ_WEBHOOKS)
    .with(WRITE_WEBHOOKS);

/// The scopes of role `name`.
pub fn role(name: &str) -> Option<Scopes> {
    match name {
        "user" => Some(USER),
        "admin" => Some(ADMIN),
        _ => None,
    }
}

impl Scopes {
    /// The empty set.
    pub const NONE: Scopes = Scopes(0);

    /// This set with `other` added.
    pub const fn with(self, other: Scopes) -> Scopes {
        Scopes(self.0 | other.0)
    }

    /// The scopes in both sets.
    pub const fn and(self, other: Scopes) -> Scopes {
        Scopes(self.0 & other.0)
    }

    /// The scopes of this set that are not in `other`.
    pub const fn minus(self, other: Scopes) -> Scopes {
        Scopes(self.0 & !other.0)
    }

    /// Whether every scope of `other` is in this set.
    pub const fn covers(self, other: Scopes) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The set of the scopes named; an unknown name is returned as the error.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Scopes, String> {
        names.iter().try_fold(Scopes::NONE, |acc, name| {
            let name = name.as_ref();
            NAMES
                .iter()
                .position(|n| *n == name)
                .map(|i| acc.with(bit(i)))
                .ok_or_else(|| name.to_string())
        })
    }

    /// The names of the scopes in the set, in a fixed order.
    pub fn names(self) -> Vec<&'static str> {
        NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, n)| *n)
            .collect()
    }

    /// The names as Tiled prints a scope list in its error messages: `['a', 'b']`.
    pub fn display(self) -> String {
        let quoted: Vec<String> = self.names().iter().map(|n| format!("'{n}'")).collect();
        format!("[{}]", quoted.join(", "))
    }
}

/// The scopes a request to `endpoint` with `method` needs (Tiled's per-route table); `None`
/// for the routes anyone may call (the root document, health, the OpenAPI document) and the
/// authentication routes, which check their own.
pub fn required(endpoint: &Endpoint, method: &Method) -> Option<Scopes> {
    use Endpoint::*;
    let read = matches!(*method, Method::GET | Method::HEAD);
    let (post, put, patch, delete) = (
        *method == Method::POST,
        *method == Method::PUT,
        *method == Method::PATCH,
        *method == Method::DELETE,
    );
    Some(match endpoint {
        WebRoot | Healthz | Readyz | OpenApi | ApiRootRedirect | ApiRoot | Auth(_) => return None,
        // Served to scrapers without credentials: counters of the node, no node names.
        // (`metrics.prometheus: false` turns it off.)
        Metrics => return None,
        // Tiled's place for them, behind Tiled's scope.
        ApiMetrics => METRICS,
        Metadata(_) if post => WRITE_METADATA.with(CREATE_NODE),
        Register(_) => WRITE_METADATA.with(CREATE_NODE).with(REGISTER),
        Metadata(_) if put || patch => WRITE_METADATA,
        Metadata(_) if delete => DELETE_NODE.with(DELETE_REVISION),
        Revisions(_) if delete => DELETE_REVISION,
        Metadata(_) | Search(_) | SearchDeep(_) | Distinct(_) | Revisions(_) => READ_METADATA,
        ArrayFull(_) | ArrayBlock(_) | TablePartition(_) | TableFull(_) | AwkwardFull(_)
            if put || patch =>
        {
            WRITE_DATA
        }
        ArrayFull(_) | ArrayBlock(_) | TablePartition(_) | TableFull(_) | AwkwardBuffers(_)
        | AwkwardFull(_) | RaggedFull(_) | ContainerFull(_)
            if read || post =>
        {
            READ_DATA
        }
        // Methods the route does not take: answered 405 by the router once admitted.
        _ => READ_METADATA,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        let s = Scopes::parse(&["read:data", "register"]).unwrap();
        assert_eq!(s.names(), vec!["read:data", "register"]);
        assert_eq!(Scopes::parse(&["read:data", "fly"]), Err("fly".to_string()));
        assert_eq!(Scopes::parse(&NAMES).unwrap().names().len(), NAMES.len());
    }

    #[test]
    fn roles_are_tileds() {
        assert!(ADMIN.covers(PUBLIC) && USER.covers(PUBLIC));
        assert!(!USER.covers(REGISTER) && ADMIN.covers(REGISTER));
        assert!(!USER.covers(READ_PRINCIPALS) && ADMIN.covers(READ_PRINCIPALS));
        assert!(USER.covers(CREATE_APIKEYS) && !ADMIN.covers(CREATE_APIKEYS));
        assert!(!SINGLE_USER.covers(ADMIN_APIKEYS));
        assert_eq!(PUBLIC.display(), "['read:metadata', 'read:data']");
    }

    #[test]
    fn routes_require_tileds_scopes() {
        let p = || vec!["x".to_string()];
        let need = |e: Endpoint, m: Method| required(&e, &m).unwrap();
        assert_eq!(need(Endpoint::Metadata(p()), Method::GET), READ_METADATA);
        assert_eq!(
            need(Endpoint::Metadata(p()), Method::POST),
            WRITE_METADATA.with(CREATE_NODE)
        );
        assert_eq!(need(Endpoint::TableFull(p()), Method::POST), READ_DATA);
        assert_eq!(need(Endpoint::TableFull(p()), Method::PUT), WRITE_DATA);
        assert_eq!(
            need(Endpoint::Metadata(p()), Method::DELETE),
            DELETE_NODE.with(DELETE_REVISION)
        );
        assert!(required(&Endpoint::ApiRoot, &Method::GET).is_none());
    }
}
