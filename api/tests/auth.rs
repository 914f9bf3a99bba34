//! Multi-user access over a real database: two `Auth`s on one database stand for two API
//! nodes, on SQLite and on PostgreSQL (a schema of its own per test).

#![allow(clippy::unwrap_used)] // test helpers: a failure here is a test failure

mod support;

use std::time::Duration;

use tessera_api::auth::scopes;
use tessera_api::auth::{Auth, AuthSettings, Caller, Credentials, NewKey, Provider, ProviderKind};

fn settings(database: String) -> AuthSettings {
    AuthSettings {
        providers: vec![Provider {
            name: "toy".into(),
            kind: ProviderKind::Dictionary(
                [("alice", "pw-a"), ("bob", "pw-b"), ("root", "pw-r")]
                    .into_iter()
                    .map(|(u, p)| (u.to_string(), p.to_string()))
                    .collect(),
            ),
            confirmation_message: None,
        }],
        admins: vec![("toy".into(), "root".into())],
        secret_keys: vec!["shared-secret".into()],
        allow_anonymous_access: false,
        access_token_max_age: Duration::from_secs(60),
        refresh_token_max_age: Duration::from_secs(600),
        session_max_age: Duration::from_secs(3600),
        database: Some(database),
        init_if_not_exists: true,
        login_failures_per_minute: 3,
        policy: None,
    }
}

async fn login(auth: &Auth, user: &str, pw: &str) -> serde_json::Value {
    auth.password_login("toy", user, pw, None)
        .await
        .unwrap_or_else(|e| panic!("login of {user}: {}", e.detail))
}

fn text(doc: &serde_json::Value, key: &str) -> String {
    doc[key].as_str().unwrap().to_string()
}

async fn bearer(auth: &Auth, doc: &serde_json::Value) -> Caller {
    auth.caller(&Credentials::Bearer(text(doc, "access_token")))
        .await
        .unwrap()
}

/// Sessions and keys made on one node hold on the other, revocations too.
async fn two_nodes_share_sessions_and_keys(database: String) {
    let a = Auth::start(settings(database.clone())).await.unwrap();
    let b = Auth::start(settings(database)).await.unwrap();

    // A login on A refreshes on B; the access token of either is good on both.
    let tokens = login(&a, "alice", "pw-a").await;
    let refreshed = b.refresh(&text(&tokens, "refresh_token")).await.unwrap();
    let caller = bearer(&a, &refreshed).await;
    assert_eq!(caller.scopes, scopes::USER);
    let alice = caller.principal.clone().unwrap();
    assert_eq!(bearer(&b, &tokens).await.principal.unwrap(), alice);

    // Identities keep their principal across logins; tiled_admins get role admin.
    let again = login(&b, "alice", "pw-a").await;
    assert_eq!(text(&again, "principal"), alice);
    let root = login(&b, "root", "pw-r").await;
    assert_eq!(bearer(&a, &root).await.scopes, scopes::ADMIN);

    // A key made on A works on B at once, with its scopes under the owner's.
    let key = a
        .create_own_key(
            &caller,
            NewKey {
                scopes: Some(vec!["read:metadata".into()]),
                expires_in: Some(3600.0),
                note: Some("ro".into()),
                ..NewKey::default()
            },
        )
        .await
        .unwrap();
    let secret = text(&key, "secret");
    assert_eq!(secret.len(), 72);
    assert_eq!(text(&key, "first_eight"), secret[..8]);
    let by_key = b
        .caller(&Credentials::ApiKey(secret.clone()))
        .await
        .unwrap();
    assert_eq!(by_key.scopes, scopes::READ_METADATA);
    assert_eq!(by_key.principal.as_deref(), Some(alice.as_str()));
    assert_eq!(
        b.key_info(&by_key).await.unwrap()["note"].as_str(),
        Some("ro")
    );
    // More than the owner holds is refused.
    let too_much = a
        .create_own_key(
            &caller,
            NewKey {
                scopes: Some(vec!["admin:apikeys".into()]),
                ..NewKey::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(too_much.status.as_u16(), 403);
    // whoami on B lists the key (without its secret) and both sessions.
    let doc = b.principal_doc(&alice).await.unwrap();
    assert_eq!(doc["identities"][0]["id"], "alice");
    assert_eq!(doc["api_keys"][0]["first_eight"], text(&key, "first_eight"));
    assert!(doc["api_keys"][0].get("secret").is_none());
    assert_eq!(doc["sessions"].as_array().unwrap().len(), 2);

    // Revoked on B: refused on A, which has not seen the key since.
    let other = a.create_own_key(&caller, NewKey::default()).await.unwrap();
    let other_secret = text(&other, "secret");
    assert!(
        b.revoke_key(&alice, &text(&other, "first_eight"))
            .await
            .unwrap()
    );
    let refused = a
        .caller(&Credentials::ApiKey(other_secret))
        .await
        .unwrap_err();
    assert_eq!(refused.status.as_u16(), 401);
    assert_eq!(refused.detail, "Invalid API key");
    // The first key is untouched by revoking the second.
    assert!(a.caller(&Credentials::ApiKey(secret)).await.is_ok());

    // Logout on B ends the session for A's refreshes.
    assert!(
        b.revoke_by_token(&text(&refreshed, "refresh_token"))
            .await
            .unwrap()
    );
    let gone = a
        .refresh(&text(&refreshed, "refresh_token"))
        .await
        .unwrap_err();
    assert_eq!(gone.status.as_u16(), 401);
    // Bob cannot revoke alice's other session by id; alice can.
    let bob = bearer(&a, &login(&a, "bob", "pw-b").await).await;
    let sessions = a.principal_doc(&alice).await.unwrap()["sessions"].clone();
    let live = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["revoked"] == false)
        .unwrap()["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!b.revoke_session(&bob, &live).await.unwrap());
    assert!(b.revoke_session(&caller, &live).await.unwrap());
    assert_eq!(
        a.refresh(&text(&again, "refresh_token"))
            .await
            .unwrap_err()
            .status
            .as_u16(),
        401
    );
}

#[tokio::test]
async fn sqlite_nodes_share_sessions_and_keys() {
    let dir = std::env::temp_dir().join(format!("tessera-auth-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    two_nodes_share_sessions_and_keys(dir.join("auth.db").display().to_string()).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn postgres_nodes_share_sessions_and_keys() {
    let schema = support::PgSchema::create("auth").await;
    two_nodes_share_sessions_and_keys(schema.uri()).await;
}

#[tokio::test]
async fn wrong_passwords_are_refused_alike_then_limited() {
    let auth = Auth::start(AuthSettings {
        database: None,
        ..settings(String::new())
    })
    .await
    .unwrap();
    let wrong = auth
        .password_login("toy", "bob", "nope", None)
        .await
        .unwrap_err();
    let unknown = auth
        .password_login("toy", "mallory", "nope", None)
        .await
        .unwrap_err();
    assert_eq!((wrong.status.as_u16(), unknown.status.as_u16()), (401, 401));
    assert_eq!(wrong.detail, unknown.detail);
    for _ in 0..2 {
        auth.password_login("toy", "bob", "nope", None)
            .await
            .unwrap_err();
    }
    // The fourth attempt is refused before the password is looked at.
    let limited = auth
        .password_login("toy", "bob", "pw-b", None)
        .await
        .unwrap_err();
    assert_eq!(limited.status.as_u16(), 429);
    assert!(limited.retry_after.unwrap() >= 1);
    // Another user is not held back by bob's failures.
    login(&auth, "alice", "pw-a").await;
    // Names and passwords past their limits are refused before they are counted or kept.
    let long = "x".repeat(10_000);
    for (user, pw) in [(long.as_str(), "pw"), ("alice", long.as_str())] {
        let e = auth
            .password_login("toy", user, pw, None)
            .await
            .unwrap_err();
        assert_eq!(e.status.as_u16(), 400, "{}", e.detail);
    }
    let alice = bearer(&auth, &login(&auth, "alice", "pw-a").await).await;
    let e = auth
        .create_own_key(
            &alice,
            NewKey {
                scopes: Some(vec!["read:data".into()]),
                access_tags: Some(vec!["t".to_string(); 1000]),
                ..NewKey::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.status.as_u16(), 400, "{}", e.detail);
}

#[tokio::test]
async fn a_database_without_tables_is_refused_unless_initialised() {
    let schema = support::PgSchema::create("authinit").await;
    let s = AuthSettings {
        init_if_not_exists: false,
        ..settings(schema.uri())
    };
    let err = Auth::start(s.clone()).await.unwrap_err().to_string();
    assert!(err.contains("init_if_not_exists"), "{err}");
    Auth::start(AuthSettings {
        init_if_not_exists: true,
        ..s.clone()
    })
    .await
    .unwrap();
    // Once made, the tables are used without init.
    Auth::start(s).await.unwrap();
}
