//! Authentication: who a bearer token belongs to (the admin token, a bootstrap token, or a token
//! the emulator issued).

use http::HeaderMap;

use crate::resources;
use crate::state::Shared;
use crate::store::meta_str;
use crate::tokens::{Claims, Rejection};

/// The group every authenticated user is in.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The group of the admin user, allowed everything.
pub const MASTERS: &str = "system:masters";

/// A user as the authorizer and TokenReview see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// User name, `system:serviceaccount:NS:NAME` for service accounts.
    pub name: String,
    /// User uid (the ServiceAccount's uid), may be empty.
    pub uid: String,
    /// Groups.
    pub groups: Vec<String>,
}

impl UserInfo {
    /// The anonymous user of unauthenticated requests.
    pub fn anonymous() -> UserInfo {
        UserInfo {
            name: "system:anonymous".into(),
            uid: String::new(),
            groups: vec!["system:unauthenticated".into()],
        }
    }

    /// The admin user of the admin token.
    pub fn admin() -> UserInfo {
        UserInfo {
            name: "admin".into(),
            uid: "admin".into(),
            groups: vec![MASTERS.into(), AUTHENTICATED.into()],
        }
    }

    /// The user a ServiceAccount's token authenticates as.
    pub fn service_account(namespace: &str, name: &str, uid: &str) -> UserInfo {
        UserInfo {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            uid: uid.into(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                AUTHENTICATED.into(),
            ],
        }
    }
}

/// What authenticating a request found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A valid credential.
    User(UserInfo),
    /// No credential at all.
    Anonymous,
    /// A credential that is not valid.
    Rejected,
}

fn same_secret(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

/// Authenticates a bearer token for `audiences`; on success the user and the audiences it is good for.
pub fn authenticate_token(
    shared: &Shared,
    token: &str,
    audiences: &[String],
) -> Result<(UserInfo, Vec<String>), Rejection> {
    if same_secret(token, &shared.admin_token) {
        return Ok((UserInfo::admin(), audiences.to_vec()));
    }
    if let Some(found) = crate::bootstrap_tokens::authenticate(shared, token) {
        return found
            .map(|user| (user, audiences.to_vec()))
            .ok_or(Rejection::NotOurs);
    }
    let claims = shared.signer.verify(token, audiences)?;
    let user = check_bound_objects(shared, &claims)?;
    let auds = claims
        .aud
        .iter()
        .filter(|a| audiences.contains(a))
        .cloned()
        .collect();
    Ok((user, auds))
}

/// Checks that the token's ServiceAccount and bound object still exist with the uids in the token.
fn check_bound_objects(shared: &Shared, claims: &Claims) -> Result<UserInfo, Rejection> {
    let k = &claims.kubernetes;
    let store = shared.store();
    let uid_matches = |plural: &str, r: &crate::tokens::ObjectRef| {
        resources::stored_type("", plural)
            .and_then(|rt| store.get(rt, &k.namespace, &r.name))
            .is_some_and(|obj| meta_str(obj, "uid") == Some(r.uid.as_str()))
    };
    if !uid_matches("serviceaccounts", &k.serviceaccount) {
        return Err(Rejection::Invalidated);
    }
    if let Some(secret) = &k.secret
        && !uid_matches("secrets", secret)
    {
        return Err(Rejection::Invalidated);
    }
    if k.pod.is_some() {
        // The emulator stores no pods, so a pod-bound token's pod is always gone.
        return Err(Rejection::Invalidated);
    }
    Ok(UserInfo::service_account(
        &k.namespace,
        &k.serviceaccount.name,
        &k.serviceaccount.uid,
    ))
}

/// Authenticates a request from its `Authorization` header, for the API server's own audience.
pub fn authenticate_request(shared: &Shared, headers: &HeaderMap) -> Caller {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return Caller::Anonymous;
    };
    let Ok(value) = value.to_str() else {
        return Caller::Rejected;
    };
    let mut parts = value.trim().splitn(2, ' ');
    let (Some(scheme), Some(token)) = (parts.next(), parts.next()) else {
        return Caller::Rejected;
    };
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Caller::Rejected;
    }
    let audiences = [shared.signer.issuer().to_string()];
    match authenticate_token(shared, token, &audiences) {
        Ok((user, _)) => Caller::User(user),
        Err(_) => Caller::Rejected,
    }
}
