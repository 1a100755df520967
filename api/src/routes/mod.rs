//! HTTP handlers, one module per resource, and the route table.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod companies;
pub mod console;
pub mod enrichments;
pub mod health;
pub mod lists;
pub mod notes;
pub mod saved_searches;
pub mod workspaces;

use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Every route, registered with its OpenAPI operation (utoipa-axum), so the
/// document cannot drift from the router. `document` is the document's
/// head: info, tags, shared components.
pub fn table(document: utoipa::openapi::OpenApi) -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(document)
        .routes(routes!(auth::register))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::revoke_all))
        .routes(routes!(workspaces::get_me))
        .routes(routes!(
            workspaces::list_my_workspaces,
            workspaces::create_workspace
        ))
        .routes(routes!(workspaces::get_current_workspace))
        .routes(routes!(
            workspaces::members::list_members,
            workspaces::members::invite_member
        ))
        .routes(routes!(workspaces::invitations::list_invitations))
        .routes(routes!(workspaces::invitations::cancel_invitation))
        .routes(routes!(workspaces::invitations::list_my_invitations))
        .routes(routes!(auth::verify_email))
        .routes(routes!(auth::request_verification_mail))
        .routes(routes!(workspaces::invitations::accept_invitation))
        .routes(routes!(workspaces::invitations::decline_invitation))
        .routes(routes!(
            workspaces::members::change_member_role,
            workspaces::members::remove_member
        ))
        .routes(routes!(workspaces::members::leave_workspace))
        .routes(routes!(
            workspaces::api_keys::list_api_keys,
            workspaces::api_keys::create_api_key
        ))
        .routes(routes!(workspaces::api_keys::revoke_api_key))
        .routes(routes!(workspaces::security_log::list_security_events))
        .routes(routes!(workspaces::security_log::list_my_security_events))
        .routes(routes!(workspaces::export::export_my_data))
        .routes(routes!(
            workspaces::erasure::request_erasure,
            workspaces::erasure::cancel_erasure
        ))
        .routes(routes!(companies::add_company, companies::list_companies))
        .routes(routes!(
            companies::get_company,
            companies::update_company,
            companies::delete_company
        ))
        .routes(routes!(enrichments::request_enrichment))
        .routes(routes!(enrichments::get_enrichment_job))
        .routes(routes!(enrichments::stream_enrichment_job))
        .routes(routes!(enrichments::get_usage))
        .routes(routes!(audit::list_events))
        .routes(routes!(audit::company_history))
        .routes(routes!(admin::list_read_models))
        .routes(routes!(admin::start_rebuild))
        .routes(routes!(admin::list_dead_letters))
        .routes(routes!(admin::retry_dead_letters))
        .routes(routes!(admin::relay_status))
        .routes(routes!(admin::enrichment_costs))
        .routes(routes!(console::console_page))
        .routes(routes!(console::sign_in_to_console))
        .routes(routes!(console::console_script))
        .routes(routes!(console::console_style))
        .routes(routes!(
            workspaces::thesis::get_thesis,
            workspaces::thesis::set_thesis
        ))
        .routes(routes!(notes::add_note, notes::list_notes))
        .routes(routes!(
            notes::get_note,
            notes::edit_note,
            notes::delete_note
        ))
        .routes(routes!(lists::create_list, lists::list_lists))
        .routes(routes!(
            lists::get_list,
            lists::rename_list,
            lists::delete_list
        ))
        .routes(routes!(lists::list_list_companies))
        .routes(routes!(
            lists::add_company_to_list,
            lists::remove_company_from_list
        ))
        .routes(routes!(
            saved_searches::create_saved_search,
            saved_searches::list_saved_searches
        ))
        .routes(routes!(
            saved_searches::get_saved_search,
            saved_searches::rename_saved_search,
            saved_searches::delete_saved_search
        ))
        .routes(routes!(saved_searches::run_saved_search))
        .routes(routes!(health::health))
        .routes(routes!(health::ready))
}
