//! `vcintel demo`: sample data for trying the product.

use clap::Subcommand;
use vcintel_infra::db;

#[derive(Debug, Subcommand)]
pub enum DemoAction {
    /// Fill the demo account's personal workspace with a few hundred
    /// companies across sectors and stages, notes, lists and saved searches
    /// (creating the account if needed). Safe to re-run.
    Seed {
        /// The account to fill (and create if it does not exist).
        #[arg(long, default_value = "demo@vcintel.dev")]
        email: String,
        /// Creates the account with this password if it does not exist.
        #[arg(long, env = "VCINTEL_DEMO_PASSWORD", hide_env_values = true)]
        password: Option<secrecy::SecretString>,
        /// How many companies the workspace gets.
        #[arg(long, default_value_t = 300)]
        companies: usize,
        #[command(flatten)]
        keys: crate::settings::MasterKeys,
    },
}

async fn seed(
    database_url: &str,
    keys: &crate::settings::MasterKeys,
    email: &str,
    password: Option<secrecy::SecretString>,
    companies: usize,
) -> anyhow::Result<()> {
    use secrecy::ExposeSecret;
    let email = vcintel_domain::user::Email::parse(email)
        .map_err(|reason| anyhow::anyhow!("--email {reason}"))?;
    let pool = db::connect(database_url, 8).await?;
    db::migrate(&pool).await?;
    let passwords = vcintel_infra::accounts::Passwords::new(Default::default())?;
    let vault = keys.vault(pool.clone())?;
    let commands = vcintel_infra::event_store::command_services(&vault);
    let options = crate::demo::DemoOptions {
        email: email.clone(),
        password: password.map(|p| p.expose_secret().to_owned()),
        companies,
    };
    let report = crate::demo::seed(&vault, &passwords, &commands, &options).await?;
    println!(
        "demo workspace {} of {email}{}: {} companies added ({} already there), {} notes, {} lists ({} memberships), {} saved searches, {} enrichments",
        report.workspace.map(|w| w.to_string()).unwrap_or_default(),
        if report.account_created { " (account created)" } else { "" },
        report.companies_added,
        report.companies_already_there,
        report.notes_added,
        report.lists_created,
        report.list_memberships,
        report.saved_searches_created,
        report.enrichments,
    );
    println!("sign in with POST /v1/auth/login as {email}; the running relay and projector publish and project the sample");
    Ok(())
}

pub async fn run(database_url: &str, action: DemoAction) -> anyhow::Result<()> {
    match action {
        DemoAction::Seed {
            email,
            password,
            companies,
            keys,
        } => seed(database_url, &keys, &email, password, companies).await,
    }
}
