//! The operator console (`/admin/console`): one page, served with its script
//! and style from the binary (no CDN; it works offline), that plots what
//! `/metrics` and the admin API say, polled every two seconds. It replaces
//! no API: everything it shows, an operator's tools can read there too.
//!
//! A browser cannot send the operator token as a header on navigation, so
//! the page signs in once with the token (`POST /admin/console/session`) and
//! gets a session cookie sealed under the token's digest: it lasts twelve
//! hours, ends when the token changes, and only reads (see `Operator`).

use crate::routes::admin::{Operator, CONSOLE_COOKIE, CONSOLE_SESSION, TAG};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

const PAGE: &str = include_str!("console/console.html");
const SIGN_IN: &str = include_str!("console/sign-in.html");
const SCRIPT: &str = include_str!("console/console.js");
const STYLE: &str = include_str!("console/console.css");

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

fn sign_in(status: StatusCode, message: &str) -> Response {
    html(status, SIGN_IN.replace("{{message}}", message))
}

/// The console, or its sign-in page for a browser without a session.
#[utoipa::path(
    get, path = "/admin/console", tag = TAG, operation_id = "operatorConsole",
    responses(
        (status = 200, description = "The console page", body = String, content_type = "text/html"),
        (status = 401, description = "The sign-in page: no console session and no operator token", body = String, content_type = "text/html"),
    ),
    security((), ("operator" = []))
)]
pub async fn console_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let signed_in = Operator::console_session(&state, &headers).is_some()
        || Operator::presented(&state, &headers).is_ok();
    if signed_in {
        html(StatusCode::OK, PAGE.to_owned())
    } else if state.admin_token_digest.is_none() {
        sign_in(
            StatusCode::UNAUTHORIZED,
            "The admin API is off: set VCINTEL_ADMIN_TOKEN to turn it on.",
        )
    } else {
        sign_in(StatusCode::UNAUTHORIZED, "")
    }
}

/// The console's sign-in form.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct ConsoleSignIn {
    /// The operator token (`VCINTEL_ADMIN_TOKEN`).
    pub token: String,
}

/// Signs the browser in with the operator token (a form field `token`),
/// and sends it to the console.
#[utoipa::path(
    post, path = "/admin/console/session", tag = TAG, operation_id = "signInToConsole",
    request_body(content = ConsoleSignIn, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed in; `Set-Cookie` holds the session, `Location` the console",
            headers(("Location" = String, description = "/admin/console"),
                    ("Set-Cookie" = String, description = "The console session"))),
        (status = 401, description = "The sign-in page again: not the operator token, or the admin API is off", body = String, content_type = "text/html"),
    )
)]
pub async fn sign_in_to_console(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let token = form_urlencoded::parse(&body)
        .find(|(name, _)| name == "token")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    let mut presented = HeaderMap::new();
    if let Ok(value) = format!("Bearer {}", token.trim()).parse() {
        presented.insert(header::AUTHORIZATION, value);
    }
    if Operator::presented(&state, &presented).is_err() {
        return sign_in(
            StatusCode::UNAUTHORIZED,
            if state.admin_token_digest.is_none() {
                "The admin API is off: set VCINTEL_ADMIN_TOKEN to turn it on."
            } else {
                "That is not the operator token."
            },
        );
    }
    let Some(session) = Operator::console_session_value(&state) else {
        return sign_in(StatusCode::UNAUTHORIZED, "The admin API is off.");
    };
    // Secure whenever the browser came over TLS (to us or to a proxy).
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let cookie = format!(
        "{CONSOLE_COOKIE}={session}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{}",
        CONSOLE_SESSION.as_secs(),
        if secure { "; Secure" } else { "" }
    );
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/admin/console".to_owned()),
            (header::SET_COOKIE, cookie),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response()
}

/// The console's script.
#[utoipa::path(
    get, path = "/admin/console/console.js", tag = TAG, operation_id = "consoleScript",
    responses((status = 200, description = "The console's script (no data)", body = String, content_type = "text/javascript"))
)]
pub async fn console_script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

/// The console's style sheet.
#[utoipa::path(
    get, path = "/admin/console/console.css", tag = TAG, operation_id = "consoleStyle",
    responses((status = 200, description = "The console's style sheet", body = String, content_type = "text/css"))
)]
pub async fn console_style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}
