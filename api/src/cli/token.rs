//! `vcintel token`: development and test bearer tokens.

use crate::auth::TokenKeys;
use clap::Subcommand;
use std::time::Duration;
use uuid::Uuid;
use vcintel_domain::{Actor, Role, UserId, WorkspaceId};

#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Mint a signed token for a user acting in a workspace (development and tests).
    Issue {
        #[arg(long)]
        workspace: Uuid,
        #[arg(long)]
        user: Uuid,
        #[arg(long, value_parser = parse_role)]
        role: Role,
        #[arg(long, default_value_t = 3600)]
        ttl_secs: u64,
        #[arg(long, env = "VCINTEL_JWT_SECRET", hide_env_values = true, value_parser = crate::settings::parse_secret)]
        jwt_secret: secrecy::SecretString,
    },
}

fn parse_role(value: &str) -> Result<Role, String> {
    use strum::VariantNames;
    value.parse().map_err(|_| {
        format!(
            "unknown role `{value}`; expected one of {}",
            Role::VARIANTS.join(", ")
        )
    })
}

pub fn run(action: TokenAction) -> anyhow::Result<()> {
    match action {
        TokenAction::Issue {
            workspace,
            user,
            role,
            ttl_secs,
            jwt_secret,
        } => {
            use secrecy::ExposeSecret;
            let keys = TokenKeys::new(jwt_secret.expose_secret().as_bytes());
            let actor = Actor {
                workspace_id: WorkspaceId(workspace),
                user_id: UserId(user),
                role,
                api_key: None,
            };
            println!("{}", keys.issue(&actor, Duration::from_secs(ttl_secs))?);
            Ok(())
        }
    }
}
