//! `qianbao ops`: the platform operators' actions, over the HTTP API of a running
//! `qianbao serve` (`--url`, `--key`, an `ops:*` or admin key), for scripts and incidents.

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

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
    /// Sets the outcome of an inquiry the bank never answered, from the bank's evidence (the
    /// maker). At or above the approval threshold it waits for a second key (`ops approve`).
    Outcome {
        #[arg(long)]
        channel: String,
        #[arg(long)]
        request_id: String,
        /// The money moved; give the bank's reference (and fee).
        #[arg(long, conflicts_with = "failed", required_unless_present = "failed")]
        succeeded: bool,
        /// The bank never carried it out.
        #[arg(long)]
        failed: bool,
        /// For a success: the bank's reference.
        #[arg(long, required_if_eq("succeeded", "true"))]
        channel_ref: Option<String>,
        /// For a success: the bank's fee, in minor units.
        #[arg(long, default_value_t = 0)]
        fee: u64,
        /// Where the bank's answer is: a statement line, a portal screen, a call.
        #[arg(long)]
        evidence: String,
        #[arg(long)]
        reason: String,
        /// The incident ticket.
        #[arg(long)]
        ticket: Option<String>,
    },
    /// Returns a suspended top-up to the card it came from (原路退回): the wallet refused
    /// the money, which waits in suspense. Needs a second key's approval like an outcome.
    Return {
        /// The suspended top-up (`qianbao ops exceptions`).
        #[arg(long)]
        order: String,
        /// Why the money cannot go to the wallet (closed for good, say).
        #[arg(long)]
        evidence: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        ticket: Option<String>,
    },
    /// Lists operators' actions, newest first (`--state pending_approval`: what waits for a
    /// checker).
    Actions {
        #[arg(long)]
        state: Option<String>,
    },
    /// Shows one action.
    Action { id: String },
    /// Approves another key's pending action (the checker); it is carried out at once.
    Approve {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Rejects another key's pending action.
    Reject {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Lists the switches ever set, at their current version (`in_force`: obeyed now).
    Switches,
    /// Sets a switch on or off: `kill_all`, `kill_product --product withdrawal`,
    /// `kill_merchant --tenant acme --merchant shop`,
    /// `history_reads_off`, `bulk_off`, `settlement_paused`, `webhooks_delayed`,
    /// `payouts_frozen --channel bank_a`, `channel_disabled|channel_pinned --channel bank_a`,
    /// `channel_weight --channel bank_a --value 500`, `channel_fee --channel bank_a --value 25`
    /// (per 10,000), `channel_breaker_errors --channel bank_a --value 300` (per thousand
    /// calls), `channel_rate_limit --channel bank_a --value 200` (a second),
    /// `order_held --order wd_…` (pause one order).
    Switch {
        #[command(flatten)]
        target: SwitchTarget,
        /// Turn it on (without: off).
        #[arg(long)]
        on: bool,
        /// A channel weight's permille.
        #[arg(long)]
        value: Option<u32>,
        /// Turn it back off after this long.
        #[arg(long)]
        expires_in_ms: Option<u64>,
        /// The version you saw (`qianbao ops switches`; 0: never set): refused if it is at
        /// another, so no one overwrites a change they have not seen.
        #[arg(long)]
        expected_version: Option<u64>,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        ticket: Option<String>,
    },
    /// Sets a switch back to its previous version.
    RollbackSwitch {
        #[command(flatten)]
        target: SwitchTarget,
        /// The version you saw: refused if it is at another.
        #[arg(long)]
        expected_version: Option<u64>,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        ticket: Option<String>,
    },
    /// Lists the contingency plans (预案).
    Plans,
    /// Runs a plan (`run`) or rolls it back (`rollback`): `qianbao ops plan run channel_down
    /// --channel bank_a --reason …`.
    Plan {
        /// `run` or `rollback`.
        #[arg(value_parser = ["run", "rollback"])]
        step: String,
        name: String,
        #[arg(long)]
        channel: Option<String>,
        #[arg(long)]
        expires_in_ms: Option<u64>,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        ticket: Option<String>,
    },
    /// Prints the audit log as JSON lines, oldest first (the whole log unless `--limit`), or
    /// with `--verify` recomputes its hash chain.
    Audit {
        /// Entries after this sequence number.
        #[arg(long, default_value_t = 0)]
        after_seq: u64,
        /// At most this many entries.
        #[arg(long)]
        limit: Option<u64>,
        #[arg(long)]
        verify: bool,
    },
}

/// A switch as the command line names it.
#[derive(Args)]
struct SwitchTarget {
    /// The switch: kill_all, kill_product, kill_merchant, history_reads_off, bulk_off, settlement_paused,
    /// webhooks_delayed, payouts_frozen, channel_disabled, channel_pinned, channel_weight,
    /// channel_fee, channel_breaker_errors and channel_rate_limit (with `--value`), order_held (pause one order:
    /// `--order`).
    switch: String,
    /// For order_held: the order's id.
    #[arg(long)]
    order: Option<String>,
    /// For kill_product.
    #[arg(long)]
    product: Option<String>,
    /// For the channel switches.
    #[arg(long)]
    channel: Option<String>,
    /// For kill_merchant: the merchant's tenant and id.
    #[arg(long)]
    tenant: Option<String>,
    #[arg(long)]
    merchant: Option<String>,
}

impl SwitchTarget {
    fn json(&self) -> Value {
        let mut target = json!({"switch": self.switch});
        if let Some(product) = &self.product {
            target["product"] = json!(product);
        }
        if let Some(channel) = &self.channel {
            target["channel"] = json!(channel);
        }
        if let Some(tenant) = &self.tenant {
            target["tenant"] = json!(tenant);
        }
        if let Some(merchant) = &self.merchant {
            target["merchant"] = json!(merchant);
        }
        if let Some(order) = &self.order {
            target["order"] = json!(order);
        }
        target
    }
}

/// `reason` and, when given, `ticket` into `body`.
fn with_words(mut body: Value, reason: &str, ticket: Option<&String>) -> Value {
    body["reason"] = json!(reason);
    if let Some(ticket) = ticket {
        body["ticket"] = json!(ticket);
    }
    body
}

pub fn run(args: OpsArgs) -> anyhow::Result<()> {
    let key = args.key.clone().context("an API key is needed: --key or QIANBAO_API_KEY")?;
    let client = Client::new(&args.url, key);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    if let OpsCommand::Audit { after_seq, limit, verify: false } = &args.command {
        return runtime.block_on(export_audit(&client, *after_seq, *limit));
    }
    let answer = runtime.block_on(async {
        use reqwest::Method;
        match &args.command {
            OpsCommand::Inquiries => {
                client.send(Method::GET, "/v1/ops/inquiries/escalated", None).await
            }
            OpsCommand::Ask { channel, request_id } => {
                let path = format!("/v1/ops/inquiries/{channel}/{request_id}/ask");
                client.send(Method::POST, &path, Some(Value::Null)).await
            }
            OpsCommand::Overdue => client.send(Method::GET, "/v1/ops/orders/overdue", None).await,
            OpsCommand::Exceptions => {
                client.send(Method::GET, "/v1/ops/orders/exceptions", None).await
            }
            OpsCommand::Outcome {
                channel,
                request_id,
                succeeded,
                failed: _,
                channel_ref,
                fee,
                evidence,
                reason,
                ticket,
            } => {
                let result = if *succeeded {
                    json!({"outcome": "succeeded", "channel_ref": channel_ref, "fee": fee.to_string()})
                } else {
                    json!({"outcome": "failed"})
                };
                let mut body = json!({"result": result, "evidence": evidence, "reason": reason});
                if let Some(ticket) = ticket {
                    body["ticket"] = json!(ticket);
                }
                let path = format!("/v1/ops/inquiries/{channel}/{request_id}/outcome");
                client.send(Method::POST, &path, Some(body)).await
            }
            OpsCommand::Return { order, evidence, reason, ticket } => {
                let body = with_words(json!({"evidence": evidence}), reason, ticket.as_ref());
                let path = format!("/v1/ops/orders/{order}/return");
                client.send(Method::POST, &path, Some(body)).await
            }
            OpsCommand::Actions { state } => {
                let query = state.as_ref().map(|s| format!("?state={s}")).unwrap_or_default();
                client.send(Method::GET, &format!("/v1/ops/actions{query}"), None).await
            }
            OpsCommand::Action { id } => {
                client.send(Method::GET, &format!("/v1/ops/actions/{id}"), None).await
            }
            OpsCommand::Approve { id, reason } | OpsCommand::Reject { id, reason } => {
                let verb = if matches!(args.command, OpsCommand::Approve { .. }) {
                    "approve"
                } else {
                    "reject"
                };
                let path = format!("/v1/ops/actions/{id}/{verb}");
                client.send(Method::POST, &path, Some(json!({"reason": reason}))).await
            }
            OpsCommand::Audit { .. } => client.send(Method::GET, "/v1/ops/audit/verify", None).await,
            OpsCommand::Switches => client.send(Method::GET, "/v1/ops/switches", None).await,
            OpsCommand::Switch {
                target,
                on,
                value,
                expires_in_ms,
                expected_version,
                reason,
                ticket,
            } => {
                let mut body = json!({"target": target.json(), "on": on});
                if let Some(value) = value {
                    body["value"] = json!(value);
                }
                if let Some(version) = expected_version {
                    body["expected_version"] = json!(version);
                }
                if let Some(ms) = expires_in_ms {
                    body["expires_in_ms"] = json!(ms);
                }
                let body = with_words(body, reason, ticket.as_ref());
                client.send(Method::POST, "/v1/ops/switches", Some(body)).await
            }
            OpsCommand::RollbackSwitch { target, expected_version, reason, ticket } => {
                let mut body = json!({"target": target.json()});
                if let Some(version) = expected_version {
                    body["expected_version"] = json!(version);
                }
                let body = with_words(body, reason, ticket.as_ref());
                client.send(Method::POST, "/v1/ops/switches/rollback", Some(body)).await
            }
            OpsCommand::Plans => client.send(Method::GET, "/v1/ops/plans", None).await,
            OpsCommand::Plan { step, name, channel, expires_in_ms, reason, ticket } => {
                let mut body = json!({});
                if let Some(channel) = channel {
                    body["channel"] = json!(channel);
                }
                if let Some(ms) = expires_in_ms {
                    body["expires_in_ms"] = json!(ms);
                }
                let body = with_words(body, reason, ticket.as_ref());
                let path = format!("/v1/ops/plans/{name}/{step}");
                client.send(Method::POST, &path, Some(body)).await
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
    match &args.command {
        OpsCommand::Outcome { .. }
        | OpsCommand::Return { .. }
        | OpsCommand::Actions { .. }
        | OpsCommand::Action { .. }
        | OpsCommand::Approve { .. }
        | OpsCommand::Reject { .. } => {
            let actions = match answer["data"].as_array() {
                Some(list) => list.clone(),
                None => vec![answer],
            };
            print_actions(&actions);
            return Ok(());
        }
        OpsCommand::Switches
        | OpsCommand::Switch { .. }
        | OpsCommand::RollbackSwitch { .. }
        | OpsCommand::Plan { .. } => {
            print_switches(answer["data"].as_array().map_or(&[][..], Vec::as_slice));
            return Ok(());
        }
        OpsCommand::Plans => {
            for plan in answer["data"].as_array().map_or(&[][..], Vec::as_slice) {
                println!(
                    "{:<16} {}\n{:<16} switches: {}; alert: {}",
                    plan["name"].as_str().unwrap_or(""),
                    plan["description"].as_str().unwrap_or(""),
                    "",
                    plan["switches"],
                    plan["alert"].as_str().unwrap_or(""),
                );
            }
            return Ok(());
        }
        OpsCommand::Audit { .. } => {
            if answer["ok"] == json!(true) {
                println!(
                    "audit log verified: {} entries, head {}",
                    answer["entries"],
                    answer["head_hash"].as_str().unwrap_or("")
                );
                return Ok(());
            }
            anyhow::bail!(
                "the audit log does not verify at entry {}: {}",
                answer["broken_seq"],
                answer["detail"].as_str().unwrap_or("")
            );
        }
        _ => {}
    }
    let tasks = match &args.command {
        OpsCommand::Inquiries => answer["data"].as_array().cloned().unwrap_or_default(),
        _ => vec![answer],
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

fn print_actions(actions: &[Value]) {
    println!(
        "{:<28} {:<17} {:<10} {:<32} {:>12} {:<14} {:<14}",
        "action", "state", "outcome", "order", "amount", "maker", "checker"
    );
    for action in actions {
        println!(
            "{:<28} {:<17} {:<10} {:<32} {:>12} {:<14} {:<14}",
            action["id"].as_str().unwrap_or(""),
            action["state"].as_str().unwrap_or(""),
            action["outcome"].as_str().unwrap_or(""),
            action["order"].as_str().unwrap_or(""),
            action["amount"].as_str().unwrap_or(""),
            action["maker"].as_str().unwrap_or(""),
            action["checker"].as_str().unwrap_or("-"),
        );
    }
    if actions.is_empty() {
        println!("(none)");
    }
}

/// The audit log as JSON lines, page by page: an export to keep elsewhere.
async fn export_audit(client: &Client, after_seq: u64, limit: Option<u64>) -> anyhow::Result<()> {
    let (mut after, mut left) = (after_seq, limit.unwrap_or(u64::MAX));
    while left > 0 {
        let page = left.min(500);
        let path = format!("/v1/ops/audit?after_seq={after}&limit={page}");
        let answer = client.send(reqwest::Method::GET, &path, None).await?;
        let entries = answer["data"].as_array().cloned().unwrap_or_default();
        for entry in &entries {
            println!("{entry}");
        }
        left = left.saturating_sub(entries.len() as u64);
        match answer["next_after_seq"].as_u64() {
            Some(next) => after = next,
            None => break,
        }
    }
    Ok(())
}

fn print_switches(switches: &[Value]) {
    println!(
        "{:<36} {:<8} {:<9} {:>7} {:>15} {:<16} {:<14}",
        "switch", "on", "in_force", "version", "expires_at_ms", "plan", "set_by"
    );
    for switch in switches {
        println!(
            "{:<36} {:<8} {:<9} {:>7} {:>15} {:<16} {:<14}",
            switch["key"].as_str().unwrap_or(""),
            switch["on"].to_string(),
            switch["in_force"].to_string(),
            switch["version"].to_string(),
            switch["expires_at_ms"].as_u64().map_or("-".to_owned(), |ms| ms.to_string()),
            switch["plan"].as_str().unwrap_or("-"),
            switch["set_by"].as_str().unwrap_or(""),
        );
    }
    if switches.is_empty() {
        println!("(no switch set)");
    }
}
