//! `qianbao keys`: API keys made on the host, with the store's files or database at hand.
//!
//! The way back in when no usable admin key is left (lost, or revoked by editing the
//! database): whoever can run this can already read the books, so it grants nothing new.
//! The service refuses to revoke its last admin key, so over the API this never happens.

use clap::{Args, Subcommand};

use crate::StoreArgs;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Creates a key and prints its secret once.
    Create(CreateArgs),
}

#[derive(Args)]
pub struct CreateArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// An admin key (every scope, every tenant). Without it or a role: ledger read and write.
    #[arg(long, conflicts_with = "role")]
    admin: bool,
    /// An operator's key of the platform: `viewer` (reads), `operator` (acts: the maker),
    /// `approver` (approves another key's money-moving action: the checker) or `admin`.
    #[arg(long, value_parser = parse_role)]
    role: Option<access::Role>,
    /// The key's tenant.
    #[arg(long, env = "QIANBAO_ADMIN_TENANT", default_value = "platform")]
    tenant: String,
    /// Why the key is made, for the audit line (a ticket, a name).
    #[arg(long, default_value = "")]
    reason: String,
}

pub fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create(args) => create(args),
    }
}

fn create(args: CreateArgs) -> anyhow::Result<()> {
    let access = args.store.access()?;
    let tenant =
        access::TenantId::new(&args.tenant).map_err(|e| anyhow::anyhow!("--tenant: {e}"))?;
    let scopes = match (args.admin, args.role) {
        (true, _) => vec![access::Scope::Admin],
        (false, Some(role)) => role.scopes(),
        (false, None) => vec![access::Scope::LedgerRead, access::Scope::LedgerWrite],
    };
    let now_us = ledger::Clock::now(&ledger::SystemClock).0;
    let (key, secret) = access::generate_key(tenant, access::KeyMode::Live, scopes, false, now_us)?;
    access.insert_key(&key)?;
    // The audit line: at warn, so it shows at the default log level.
    tracing::warn!(
        key_id = %key.id,
        tenant = %key.tenant,
        admin = args.admin,
        role = args.role.map(access::Role::as_str).unwrap_or("none"),
        reason = %args.reason,
        user = %std::env::var("USER").unwrap_or_default(),
        "api key created offline on the host"
    );
    println!("{}", secret.expose());
    eprintln!("created {} (tenant {}); the secret above is shown once", key.id, key.tenant);
    Ok(())
}

fn parse_role(raw: &str) -> Result<access::Role, String> {
    access::Role::parse(raw).ok_or_else(|| {
        let names: Vec<&str> = access::Role::ALL.iter().map(|role| role.as_str()).collect();
        format!("one of {}", names.join(", "))
    })
}
