//! `qianbao ops`: the platform operators' actions, over the HTTP API of a running
//! `qianbao serve` (`--url`, `--key`, an `ops:*` or admin key), for scripts and incidents.

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::api_client::Client;

#[derive(Args)]
pub struct OpsArgs {
    /// The service's base URL.
    #[arg(long, env = "QIANBAO_URL", default_value = "http://127.0.0.1:8080", global = true)]
    url: String,
    /// An API key with the `ops:*` scopes it needs (or an admin key).
    #[arg(long, env = "QIANBAO_API_KEY", hide_env_values = true, global = true)]
    key: Option<String>,
    /// Print the API's JSON answer instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: OpsCommand,
}

#[derive(Subcommand)]
enum OpsCommand {
    /// Lists the escalated status inquiries: requests whose outcome no inquiry has settled
    /// (still asked hourly until the bank answers).
    Inquiries,
    /// Has an open or escalated inquiry asked now, not at its scheduled time.
    Ask {
        #[arg(long)]
        channel: String,
        /// The request id we sent the channel (`<order>:<step>`).
        #[arg(long)]
        request_id: String,
    },
    /// Lists the orders unfinished past their deadline (or an hour after they last moved),
    /// of every tenant, the longest unmoved first.
    Overdue,
    /// Lists the final orders an operator must act on (异常单): suspended top-ups, disputed
    /// withdrawals and card refunds.
    Exceptions,
}

pub fn run(args: OpsArgs) -> anyhow::Result<()> {
    let key = args.key.clone().context("an API key is needed: --key or QIANBAO_API_KEY")?;
    let client = Client::new(&args.url, key);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let answer = runtime.block_on(async {
        match &args.command {
            OpsCommand::Inquiries => {
                client.send(reqwest::Method::GET, "/v1/ops/inquiries/escalated", None).await
            }
            OpsCommand::Ask { channel, request_id } => {
                let path = format!("/v1/ops/inquiries/{channel}/{request_id}/ask");
                client.send(reqwest::Method::POST, &path, Some(Value::Null)).await
            }
            OpsCommand::Overdue => {
                client.send(reqwest::Method::GET, "/v1/ops/orders/overdue", None).await
            }
            OpsCommand::Exceptions => {
                client.send(reqwest::Method::GET, "/v1/ops/orders/exceptions", None).await
            }
        }
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    if let OpsCommand::Overdue | OpsCommand::Exceptions = args.command {
        let orders = answer["data"].as_array().cloned().unwrap_or_default();
        println!(
            "{:<32} {:<12} {:<12} {:<16} {:>15}",
            "order", "tenant", "kind", "status", "updated_at_ms"
        );
        for order in &orders {
            println!(
                "{:<32} {:<12} {:<12} {:<16} {:>15}",
                order["id"].as_str().unwrap_or(""),
                order["tenant"].as_str().unwrap_or(""),
                order["kind"].as_str().unwrap_or(""),
                order["status"].as_str().unwrap_or(""),
                order["updated_at_ms"],
            );
        }
        if orders.is_empty() {
            println!("(none)");
        }
        return Ok(());
    }
    let tasks = match &args.command {
        OpsCommand::Inquiries => answer["data"].as_array().cloned().unwrap_or_default(),
        OpsCommand::Ask { .. } | OpsCommand::Overdue | OpsCommand::Exceptions => vec![answer],
    };
    println!(
        "{:<10} {:<40} {:<8} {:<10} {:>8} {:>15}",
        "channel", "request", "op", "state", "attempts", "next_at_ms"
    );
    for task in &tasks {
        println!(
            "{:<10} {:<40} {:<8} {:<10} {:>8} {:>15}",
            task["channel"].as_str().unwrap_or(""),
            task["request_id"].as_str().unwrap_or(""),
            task["operation"].as_str().unwrap_or(""),
            task["state"].as_str().unwrap_or(""),
            task["attempts"],
            task["next_at_ms"],
        );
    }
    if tasks.is_empty() {
        println!("(no escalated inquiry)");
    }
    Ok(())
}
