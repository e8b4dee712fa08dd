//! The HTTPS server: accept loop with TLS, fault handling, authentication, authorisation and routing.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Request, StatusCode, header};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::authn::{self, Caller, UserInfo};
use crate::certificates;
use crate::custom_resources::{self, CustomRequest};
use crate::discovery;
use crate::protobuf;
use crate::rbac::{self, Attributes};
use crate::request_info::{self, RequestInfo};
use crate::resources::{self, Handling};
use crate::rest::{self, RestRequest};
use crate::reviews::{self, AccessReview};
use crate::state::Shared;
use crate::status::ApiError;
use crate::token_request;
use crate::{watches, webhooks};

/// The largest request body accepted (a real server takes 3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;

fn json_response(code: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = (status, bytes).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn error_response(e: &ApiError) -> Response {
    let mut resp = json_response(e.code, &e.body());
    for (name, value) in &e.headers {
        if let Ok(v) = HeaderValue::from_str(value) {
            resp.headers_mut().insert(*name, v);
        }
    }
    resp
}

fn text_response(text: &'static str) -> Response {
    let mut resp = (StatusCode::OK, text).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn attributes(info: &RequestInfo, user: &UserInfo) -> Attributes {
    Attributes {
        user: Some(user.clone()),
        verb: info.verb.clone(),
        resource_request: info.resource_request,
        namespace: info.namespace.clone(),
        api_group: info.api_group.clone(),
        resource: info.resource.clone(),
        subresource: info.subresource.clone(),
        name: info.name.clone(),
        path: info.path.clone(),
    }
}

/// RBAC's escalation rule for bindings: whoever creates or replaces a binding must be allowed to
/// `bind` the role it grants (or be in `system:masters`). A real server also accepts a user who
/// already holds every permission of the role; the emulator does not compute that coverage, so it
/// is stricter there, never looser.
fn check_escalation(
    shared: &Shared,
    info: &request_info::RequestInfo,
    method: &http::Method,
    body: &[u8],
    user: &UserInfo,
) -> Result<(), ApiError> {
    let binding = info.api_group == "rbac.authorization.k8s.io"
        && matches!(
            info.resource.as_str(),
            "rolebindings" | "clusterrolebindings"
        )
        && info.subresource.is_empty();
    if !binding
        || !matches!(*method, http::Method::POST | http::Method::PUT)
        || user.groups.iter().any(|g| g == "system:masters")
    {
        return Ok(());
    }
    let Ok(object) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Ok(()); // the handler answers a malformed body
    };
    let kind = object["roleRef"]["kind"].as_str().unwrap_or("");
    let role = object["roleRef"]["name"].as_str().unwrap_or("");
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or(info.name.as_str());
    let (resource, namespace) = match kind {
        "Role" => ("roles", info.namespace.clone()),
        _ => ("clusterroles", info.namespace.clone()),
    };
    let attrs = rbac::Attributes {
        user: Some(user.clone()),
        verb: "bind".into(),
        resource_request: true,
        namespace,
        api_group: "rbac.authorization.k8s.io".into(),
        resource: resource.into(),
        subresource: String::new(),
        name: role.into(),
        path: String::new(),
    };
    if rbac::authorize(&shared.store(), &attrs).allowed {
        return Ok(());
    }
    Err(ApiError::forbidden(
        format!(
            "{}.rbac.authorization.k8s.io {:?} is forbidden: user {:?} (groups={:?}) is attempting to grant RBAC permissions not currently held: may not bind {} {:?}",
            info.resource, name, user.name, user.groups, kind, role
        ),
        serde_json::json!({"name": name, "group": "rbac.authorization.k8s.io", "kind": info.resource}),
    ))
}

/// The DER of the client certificate a connection presented (and the CA verified).
#[derive(Clone)]
struct PeerCertificate(Vec<u8>);

/// Answers one request: authentication, authorisation and the handler. (Faults are the test
/// harness's fault proxy's business: it sits in front of this server and of a real one alike.)
async fn handle(State(shared): State<Arc<Shared>>, req: Request<Body>) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return error_response(&ApiError::for_code(
                413,
                "the request body is too large or could not be read",
            ));
        }
    };
    let query: HashMap<String, String> = match Query::try_from_uri(&parts.uri) {
        Ok(Query(q)) => q,
        Err(e) => return error_response(&ApiError::bad_request(e.body_text())),
    };

    // A verified client certificate names the caller first, as the API server's x509
    // authenticator comes before its token authenticators.
    let certificate_user = parts
        .extensions
        .get::<PeerCertificate>()
        .and_then(|peer| certificates::user_of_certificate(&peer.0));
    let caller = match certificate_user {
        Some(user) => Caller::User(user),
        None => authn::authenticate_request(&shared, &parts.headers),
    };
    let user = match caller {
        Caller::User(u) => u,
        Caller::Anonymous if shared.anonymous_auth => UserInfo::anonymous(),
        Caller::Anonymous | Caller::Rejected => return error_response(&ApiError::unauthorized()),
    };
    let watch = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    let info = request_info::parse(&parts.method, &path, watch);
    let attrs = attributes(&info, &user);
    let decision = rbac::authorize(&shared.store(), &attrs);
    if !decision.allowed {
        return error_response(&rbac::forbidden(&attrs));
    }
    if info.verb == "watch" {
        return match watched_type(&shared, &info) {
            Some(rt) => watches::serve(&shared, rt, &info.namespace, &info.name, &query)
                .unwrap_or_else(|e| error_response(&e)),
            None => error_response(&ApiError::no_such_path()),
        };
    }

    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (body, content_type) = if protobuf::is_protobuf(content_type) && !body.is_empty() {
        match protobuf::to_json(&body) {
            Ok(v) => (
                bytes::Bytes::from(serde_json::to_vec(&v).unwrap_or_default()),
                "application/json",
            ),
            Err(e) => {
                return error_response(&ApiError::bad_request(format!(
                    "cannot decode the protobuf body: {e}"
                )));
            }
        }
    } else {
        (body, content_type)
    };
    if let Err(e) = check_escalation(&shared, &info, &parts.method, &body, &user) {
        return error_response(&e);
    }
    let admitted =
        match webhooks::admit(&shared, &info, &parts.method, content_type, &body, &user).await {
            Ok(admitted) => admitted,
            Err(e) => return error_response(&e),
        };
    let (method, content_type, body) = match &admitted {
        Some(a) => (&a.method, a.content_type, &a.body),
        None => (&parts.method, content_type, &body),
    };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .unwrap_or("")
        .to_string();
    let result = if info.resource_request {
        serve_resource(&shared, &info, method, &query, content_type, body, &user)
    } else {
        match serve_path(&shared, &path, &host) {
            Ok(PathReply::Text(t)) => return text_response(t),
            Ok(PathReply::Json(v)) => Ok((200, v)),
            Err(e) => Err(e),
        }
    };
    let accept = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match result {
        Ok((code, body)) => json_response(code, &as_requested(accept, body)),
        Err(e) => error_response(&e),
    }
}

/// The metadata-only views a client asks for with `Accept: application/json;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1`:
/// objects reduced to their metadata, so a list of large objects costs the client nothing.
fn as_requested(accept: &str, body: Value) -> Value {
    let wants = |view: &str| {
        accept
            .split(',')
            .any(|media| media.split(';').any(|p| p.trim() == format!("as={view}")))
    };
    let partial = |obj: &Value| {
        serde_json::json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or_default(),
        })
    };
    let is_list = body.get("items").is_some_and(Value::is_array);
    if is_list && wants("PartialObjectMetadataList") {
        let items: Vec<Value> = body["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(partial)
            .collect();
        serde_json::json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": body.get("metadata").cloned().unwrap_or_default(),
            "items": items,
        })
    } else if !is_list && body.get("metadata").is_some() && wants("PartialObjectMetadata") {
        partial(&body)
    } else {
        body
    }
}

enum PathReply {
    Text(&'static str),
    Json(Value),
}

/// The stored or custom resource type a watch addresses (no subresource watches).
fn watched_type(shared: &Shared, info: &RequestInfo) -> Option<&'static resources::ResourceType> {
    if !info.subresource.is_empty() {
        return None;
    }
    match resources::find(&info.api_group, &info.api_version, &info.resource) {
        Some(rt) if rt.handling == Handling::Stored => Some(rt),
        Some(_) => None,
        None => custom_resources::find(
            &shared.store(),
            &info.api_group,
            &info.api_version,
            &info.resource,
        ),
    }
}

/// Non-resource paths: health checks and discovery (custom groups from established CRDs).
fn serve_path(shared: &Shared, path: &str, host: &str) -> Result<PathReply, ApiError> {
    let trimmed = path.trim_end_matches('/');
    let parts: Vec<&str> = trimmed.trim_start_matches('/').split('/').collect();
    let found = match parts.as_slice() {
        ["healthz" | "livez" | "readyz", ..] => return Ok(PathReply::Text("ok")),
        ["version"] => Some(discovery::version()),
        ["api"] => Some(discovery::core_versions(host)),
        ["api", version] => discovery::resource_list("", version),
        ["apis"] => {
            let mut doc = discovery::groups();
            if let Some(groups) = doc["groups"].as_array_mut() {
                groups.extend(custom_resources::discovery_groups(&shared.store()));
            }
            Some(doc)
        }
        ["apis", group] => discovery::group(group)
            .or_else(|| custom_resources::discovery_group(&shared.store(), group)),
        ["apis", group, version] => discovery::resource_list(group, version)
            .or_else(|| custom_resources::discovery_resources(&shared.store(), group, version)),
        ["openapi", "v3"] => Some(discovery::openapi_v3_index()),
        ["openapi", "v3", "api", version] => discovery::openapi_v3_document("", version),
        ["openapi", "v3", "apis", group, version] => discovery::openapi_v3_document(group, version),
        _ => None,
    };
    found
        .map(PathReply::Json)
        .ok_or_else(ApiError::no_such_path)
}

/// Resource paths: stored objects, the token subresource, and reviews.
fn serve_resource(
    shared: &Shared,
    info: &RequestInfo,
    method: &http::Method,
    query: &HashMap<String, String>,
    content_type: &str,
    body: &[u8],
    user: &UserInfo,
) -> Result<(u16, Value), ApiError> {
    if resources::find(&info.api_group, &info.api_version, &info.resource).is_none() {
        let custom = custom_resources::find(
            &shared.store(),
            &info.api_group,
            &info.api_version,
            &info.resource,
        );
        if let Some(rt) = custom {
            let request = CustomRequest {
                info,
                method,
                query,
                content_type,
                body,
            };
            return custom_resources::handle(shared, rt, &request);
        }
    }
    if !info.subresource.is_empty() {
        let combined = format!("{}/{}", info.resource, info.subresource);
        let rt = resources::find(&info.api_group, &info.api_version, &combined)
            .ok_or_else(ApiError::no_such_path)?;
        if rt.handling != Handling::Subresource {
            return Err(ApiError::no_such_path());
        }
        if combined == "certificatesigningrequests/approval" {
            return Ok((
                200,
                certificates::approve(shared, user, &info.name, method, body)?,
            ));
        }
        if info.namespace.is_empty() {
            return Err(ApiError::no_such_path());
        }
        if *method != http::Method::POST {
            return Err(ApiError::method_not_allowed(&info.api_group, &combined));
        }
        return Ok((
            201,
            token_request::create_token(shared, &info.namespace, &info.name, body)?,
        ));
    }
    let rt = resources::find(&info.api_group, &info.api_version, &info.resource)
        .ok_or_else(ApiError::no_such_path)?;
    match rt.handling {
        Handling::Stored
            if rt.group == certificates::GROUP
                && *method == http::Method::POST
                && info.name.is_empty() =>
        {
            Ok((201, certificates::create(shared, user, body)?))
        }
        Handling::Stored => {
            let reply = rest::handle(
                shared,
                &RestRequest {
                    info,
                    rt,
                    method,
                    query,
                    content_type,
                    body,
                },
            )?;
            Ok((reply.code, reply.body))
        }
        Handling::Review => {
            if *method != http::Method::POST || !info.name.is_empty() {
                return Err(ApiError::method_not_allowed(rt.group, rt.plural));
            }
            if rt.namespaced == info.namespace.is_empty() {
                return Err(ApiError::no_such_path());
            }
            let body = match rt.plural {
                "tokenreviews" => reviews::token_review(shared, body)?,
                "subjectaccessreviews" => {
                    reviews::access_review(shared, AccessReview::Subject, user, "", body)?
                }
                "selfsubjectaccessreviews" => {
                    reviews::access_review(shared, AccessReview::SelfSubject, user, "", body)?
                }
                _ => reviews::access_review(
                    shared,
                    AccessReview::Local,
                    user,
                    &info.namespace,
                    body,
                )?,
            };
            Ok((201, body))
        }
        Handling::Subresource | Handling::Custom { .. } => Err(ApiError::no_such_path()),
    }
}

/// Accepts connections until `shutdown` turns true, serving each over TLS with HTTP/1.1 or HTTP/2.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let router = Router::new().fallback(handle).with_state(shared.clone());
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => accepted,
        };
        let Ok((tcp, _peer)) = accepted else {
            continue;
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let connection = async {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                // The handshake verified any client certificate against the CA.
                let router = match tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
                    Some(cert) => router.layer(axum::Extension(PeerCertificate(cert.to_vec()))),
                    None => router,
                };
                let service = TowerToHyperService::new(router);
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(tls), service)
                    .await;
            };
            tokio::select! {
                _ = connection => {}
                _ = stop.wait_for(|s| *s) => {}
            }
        });
    }
}
