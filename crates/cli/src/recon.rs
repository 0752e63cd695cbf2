//! `qianbao recon`: reconciliation (对账) for operators, over the HTTP API of a running
//! `qianbao serve` (`--url`, `--key`): statements, runs, breaks and their resolution, the loss
//! register. It talks to the service rather than to the stores, so it works from any
//! operator's machine and every action is authorised, idempotent and audited as the API's.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::api_client::Client;

#[derive(Args)]
pub struct ReconArgs {
    /// The service's base URL.
    #[arg(long, env = "QIANBAO_URL", default_value = "http://127.0.0.1:8080", global = true)]
    url: String,
    /// An API key with the `recon:*` scopes it needs (or an admin key).
    #[arg(long, env = "QIANBAO_API_KEY", hide_env_values = true, global = true)]
    key: Option<String>,
    /// Print the API's JSON answer instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: ReconCommand,
}

#[derive(Subcommand)]
enum ReconCommand {
    /// Measures reconciliation end to end on a generated statement of `--lines` lines
    /// against as many orders (SQLite, or PostgreSQL with `--database-url`); needs no
    /// running service.
    Bench(crate::recon_bench::BenchArgs),
    /// Reconciles a channel's statement of a business day (fetched from the channel first
    /// unless `--no-fetch`) and prints what the run found.
    Run {
        #[arg(long)]
        channel: String,
        /// The business day, YYYY-MM-DD.
        #[arg(long)]
        date: String,
        /// Reconcile the newest stored statement without fetching.
        #[arg(long)]
        no_fetch: bool,
    },
    /// Uploads a statement file (the documented CSV format) for a channel and day.
    Upload {
        #[arg(long)]
        channel: String,
        #[arg(long)]
        date: String,
        file: PathBuf,
    },
    /// Lists runs, newest first.
    Runs {
        #[arg(long)]
        channel: Option<String>,
        #[arg(long)]
        date: Option<String>,
    },
    /// Lists breaks, newest first.
    Breaks {
        #[arg(long)]
        channel: Option<String>,
        #[arg(long)]
        date: Option<String>,
        /// `matched`, `missing_external`, `missing_internal`, `amount_mismatch`, …
        #[arg(long)]
        class: Option<String>,
        /// `open`, `assigned`, `pending_approval`, `resolving`, `resolved`.
        #[arg(long)]
        state: Option<String>,
    },
    /// One break with its audit trail.
    Break { id: String },
    /// Gives a break to an operator.
    Assign {
        id: String,
        #[arg(long)]
        to: String,
    },
    /// Proposes a resolution: credit_customer, refund_payer, adjust, write_off, recover,
    /// force_match. Booked at once below the approval threshold; otherwise it waits for
    /// another key's approval.
    Propose {
        id: String,
        #[arg(long)]
        resolution: String,
        #[arg(long)]
        reason: String,
        /// For `recover`: the loss recovered.
        #[arg(long)]
        loss: Option<String>,
        /// For `credit_customer`: the customer (with `--tenant`), if not the order's.
        #[arg(long)]
        customer: Option<String>,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Approves another key's proposed resolution (needs `recon:approve`).
    Approve { id: String },
    /// Turns a proposed resolution down (needs `recon:approve`).
    Reject {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// The loss register (损失核算), optionally of a period of business days.
    Losses {
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
    },
    /// Losses by channel, cause and currency.
    LossReport {
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
    },
    /// Runs the internal cross-checks (业务数据核对) now and prints each check's result.
    Check,
    /// Past cross-check runs, newest first.
    Checks,
    /// Closed business days (日切), newest first.
    Days,
    /// A closed day's trial balance: opening, debits, credits, closing per chart line.
    Day { date: String },
    /// Closes a business day now (after its cut-over; the service does it hourly).
    Close { date: String },
}

pub fn run(args: ReconArgs) -> anyhow::Result<()> {
    if let ReconCommand::Bench(bench) = args.command {
        return crate::recon_bench::run(bench);
    }
    let key = args.key.clone().context("an API key is needed: --key or QIANBAO_API_KEY")?;
    let client = Client::new(&args.url, key);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let answer = runtime.block_on(call(&client, &args.command))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print_human(&args.command, &answer);
    }
    Ok(())
}

/// `?a=1&b=2` of the parameters that are set (values are plain ids and dates).
fn query(pairs: &[(&str, &Option<String>)]) -> String {
    let set: Vec<String> = pairs
        .iter()
        .filter_map(|(name, value)| value.as_ref().map(|v| format!("{name}={v}")))
        .collect();
    if set.is_empty() {
        String::new()
    } else {
        format!("?{}", set.join("&"))
    }
}

async fn call(client: &Client, command: &ReconCommand) -> anyhow::Result<Value> {
    use reqwest::Method;
    match command {
        ReconCommand::Bench(_) => anyhow::bail!("the bench runs without a service"),
        ReconCommand::Run { channel, date, no_fetch } => {
            let body = json!({"channel": channel, "business_day": date, "fetch": !no_fetch});
            client.send(Method::POST, "/v1/recon/runs", Some(body)).await
        }
        ReconCommand::Upload { channel, date, file } => {
            let content = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            let body = json!({"channel": channel, "business_day": date, "content": content});
            client.send(Method::POST, "/v1/recon/statements", Some(body)).await
        }
        ReconCommand::Runs { channel, date } => {
            let q = query(&[
                ("channel", channel),
                ("business_day", date),
                ("limit", &Some("500".into())),
            ]);
            client.send(Method::GET, &format!("/v1/recon/runs{q}"), None).await
        }
        ReconCommand::Breaks { channel, date, class, state } => {
            let q = query(&[
                ("channel", channel),
                ("business_day", date),
                ("class", class),
                ("state", state),
                ("limit", &Some("500".into())),
            ]);
            client.send(Method::GET, &format!("/v1/recon/breaks{q}"), None).await
        }
        ReconCommand::Break { id } => {
            client.send(Method::GET, &format!("/v1/recon/breaks/{id}"), None).await
        }
        ReconCommand::Assign { id, to } => {
            let path = format!("/v1/recon/breaks/{id}/assign");
            client.send(Method::POST, &path, Some(json!({"assignee": to}))).await
        }
        ReconCommand::Propose { id, resolution, reason, loss, customer, tenant } => {
            let mut resolution = json!({"kind": resolution});
            if let Some(loss) = loss {
                resolution["loss_id"] = json!(loss);
            }
            if let Some(customer) = customer {
                resolution["customer"] = json!(customer);
            }
            if let Some(tenant) = tenant {
                resolution["tenant"] = json!(tenant);
            }
            let path = format!("/v1/recon/breaks/{id}/propose");
            let body = json!({"resolution": resolution, "reason": reason});
            client.send(Method::POST, &path, Some(body)).await
        }
        ReconCommand::Approve { id } => {
            client
                .send(Method::POST, &format!("/v1/recon/breaks/{id}/approve"), Some(json!({})))
                .await
        }
        ReconCommand::Reject { id, reason } => {
            let path = format!("/v1/recon/breaks/{id}/reject");
            client.send(Method::POST, &path, Some(json!({"reason": reason}))).await
        }
        ReconCommand::Losses { from, to } => {
            let q = query(&[("from", from), ("to", to)]);
            client.send(Method::GET, &format!("/v1/recon/losses{q}"), None).await
        }
        ReconCommand::LossReport { from, to } => {
            let q = query(&[("from", from), ("to", to)]);
            client.send(Method::GET, &format!("/v1/recon/loss-report{q}"), None).await
        }
        ReconCommand::Check => client.send(Method::POST, "/v1/recon/checks", Some(json!({}))).await,
        ReconCommand::Checks => client.send(Method::GET, "/v1/recon/checks?limit=500", None).await,
        ReconCommand::Days => client.send(Method::GET, "/v1/recon/days?limit=500", None).await,
        ReconCommand::Day { date } => {
            client.send(Method::GET, &format!("/v1/recon/days/{date}"), None).await
        }
        ReconCommand::Close { date } => {
            client
                .send(Method::POST, &format!("/v1/recon/days/{date}/close"), Some(json!({})))
                .await
        }
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Prints rows under a header, each column as wide as its widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> =
            cells.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

fn print_run(run: &Value) {
    println!(
        "run {}  channel {}  day {}  statement {} (sha256 {}…)",
        text(&run["id"]),
        text(&run["channel"]),
        text(&run["business_day"]),
        text(&run["statement_id"]),
        text(&run["statement_sha256"]).chars().take(12).collect::<String>()
    );
    let totals: Vec<Vec<String>> = run["totals"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|row| {
            vec![
                text(&row["tx_type"]),
                text(&row["currency"]),
                text(&row["count_ours"]),
                text(&row["sum_ours_minor"]),
                text(&row["count_theirs"]),
                text(&row["sum_theirs_minor"]),
                if row["agrees"] == json!(true) { "yes".into() } else { "NO".into() },
            ]
        })
        .collect();
    println!("\ntotals (总分对账)");
    table(&["type", "currency", "ours", "ours sum", "theirs", "theirs sum", "agree"], &totals);
    let counts: Vec<Vec<String>> = run["counts"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(class, count)| vec![class.clone(), text(count)])
        .collect();
    println!("\nlines by class");
    table(&["class", "lines"], &counts);
    println!(
        "\nnew breaks {}  completed from the statement {}  superseded {}  result {}",
        text(&run["breaks_new"]),
        text(&run["auto_resolved"]),
        text(&run["superseded"]),
        text(&run["result_hash"])
    );
}

fn print_break(item: &Value) {
    println!(
        "{}  {}  {}  {} {}  state {}  severity {}",
        text(&item["id"]),
        text(&item["channel"]),
        text(&item["business_day"]),
        text(&item["class"]),
        text(&item["tx_type"]),
        text(&item["state"]),
        text(&item["severity"])
    );
    println!(
        "  request {}  order {}  line {}  ours {}/{}  theirs {}/{}  suspense {}/{}",
        text(&item["request_id"]),
        text(&item["order_id"]),
        text(&item["statement_line"]),
        text(&item["amount_ours"]),
        text(&item["fee_ours"]),
        text(&item["amount_theirs"]),
        text(&item["fee_theirs"]),
        text(&item["suspense_amount_minor"]),
        text(&item["suspense_fee_minor"])
    );
    if let Some(events) = item["events"].as_array() {
        for event in events {
            println!(
                "  {}  {}  {}  {}",
                text(&event["at_ms"]),
                text(&event["actor"]),
                text(&event["action"]),
                event["detail"]
            );
        }
    }
}

fn print_day(day: &Value) {
    println!(
        "{}  closed by {}  journal {}..{}  balanced {}  hash {}",
        text(&day["business_day"]),
        text(&day["closed_by"]),
        text(&day["from_seq"]),
        text(&day["to_seq"]),
        text(&day["balanced"]),
        text(&day["hash"])
    );
    let lines: Vec<Vec<String>> = day["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|line| {
            vec![
                text(&line["asset"]),
                text(&line["chart_code"]),
                text(&line["opening_net_minor"]),
                text(&line["debits_minor"]),
                text(&line["credits_minor"]),
                text(&line["closing_net_minor"]),
            ]
        })
        .collect();
    if !lines.is_empty() {
        println!();
        table(
            &["asset", "chart", "opening (Dr-Cr)", "debits", "credits", "closing (Dr-Cr)"],
            &lines,
        );
    }
}

fn print_human(command: &ReconCommand, answer: &Value) {
    let rows = |answer: &Value| answer["data"].as_array().cloned().unwrap_or_default();
    match command {
        ReconCommand::Bench(_) => {}
        ReconCommand::Run { .. } => print_run(answer),
        ReconCommand::Upload { .. } => {
            let statement = &answer["statement"];
            println!(
                "{} {} version {} of {} {} ({} lines, sha256 {})",
                if answer["created"] == json!(true) { "stored" } else { "already stored:" },
                text(&statement["id"]),
                text(&statement["version"]),
                text(&statement["channel"]),
                text(&statement["business_day"]),
                text(&statement["detail_lines"]),
                text(&statement["sha256"])
            );
        }
        ReconCommand::Runs { .. } => {
            let data: Vec<Vec<String>> = rows(answer)
                .iter()
                .map(|run| {
                    vec![
                        text(&run["id"]),
                        text(&run["channel"]),
                        text(&run["business_day"]),
                        text(&run["counts"]["matched"]),
                        text(&run["breaks_new"]),
                        text(&run["auto_resolved"]),
                        text(&run["started_by"]),
                    ]
                })
                .collect();
            table(&["run", "channel", "day", "matched", "new breaks", "completed", "by"], &data);
        }
        ReconCommand::Breaks { .. } => {
            let data: Vec<Vec<String>> = rows(answer)
                .iter()
                .map(|item| {
                    vec![
                        text(&item["id"]),
                        text(&item["channel"]),
                        text(&item["business_day"]),
                        text(&item["class"]),
                        text(&item["suspense_amount_minor"]),
                        text(&item["suspense_fee_minor"]),
                        text(&item["severity"]),
                        text(&item["state"]),
                        text(&item["assignee"]),
                    ]
                })
                .collect();
            table(
                &[
                    "break", "channel", "day", "class", "amount", "fee", "severity", "state",
                    "assignee",
                ],
                &data,
            );
        }
        ReconCommand::Break { .. }
        | ReconCommand::Assign { .. }
        | ReconCommand::Propose { .. }
        | ReconCommand::Approve { .. }
        | ReconCommand::Reject { .. } => print_break(answer),
        ReconCommand::Losses { .. } => {
            let data: Vec<Vec<String>> = rows(answer)
                .iter()
                .map(|loss| {
                    vec![
                        text(&loss["id"]),
                        text(&loss["channel"]),
                        text(&loss["business_day"]),
                        text(&loss["cause"]),
                        text(&loss["currency"]),
                        text(&loss["amount"]),
                        text(&loss["recovered"]),
                        text(&loss["maker"]),
                        text(&loss["approver"]),
                    ]
                })
                .collect();
            table(
                &[
                    "loss",
                    "channel",
                    "day",
                    "cause",
                    "cur",
                    "amount",
                    "recovered",
                    "maker",
                    "approver",
                ],
                &data,
            );
        }
        ReconCommand::Check => {
            println!("run {}  all passed: {}", text(&answer["id"]), text(&answer["ok"]));
            let data: Vec<Vec<String>> = answer["checks"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|check| {
                    let first = &check["findings"][0];
                    vec![
                        text(&check["name"]),
                        if check["ok"] == json!(true) { "ok".into() } else { "FAILED".into() },
                        text(&check["examined"]),
                        text(&check["n_findings"]),
                        if first.is_null() {
                            String::new()
                        } else {
                            format!("{}: {}", text(&first["subject"]), text(&first["detail"]))
                        },
                    ]
                })
                .collect();
            table(&["check", "result", "examined", "findings", "first finding"], &data);
        }
        ReconCommand::Checks => {
            let data: Vec<Vec<String>> = rows(answer)
                .iter()
                .map(|run| {
                    let failed: Vec<String> = run["checks"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|c| c["ok"] != json!(true))
                        .map(|c| text(&c["name"]))
                        .collect();
                    vec![
                        text(&run["id"]),
                        text(&run["started_at_ms"]),
                        text(&run["started_by"]),
                        if failed.is_empty() { "all passed".into() } else { failed.join(",") },
                    ]
                })
                .collect();
            table(&["run", "started at (ms)", "by", "failed"], &data);
        }
        ReconCommand::Days => {
            let data: Vec<Vec<String>> = rows(answer)
                .iter()
                .map(|day| {
                    vec![
                        text(&day["business_day"]),
                        text(&day["balanced"]),
                        text(&day["closed_by"]),
                        text(&day["hash"]),
                    ]
                })
                .collect();
            table(&["day", "balanced", "closed by", "hash"], &data);
        }
        ReconCommand::Day { .. } | ReconCommand::Close { .. } => print_day(answer),
        ReconCommand::LossReport { .. } => {
            let data: Vec<Vec<String>> = answer["rows"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|row| {
                    vec![
                        text(&row["channel"]),
                        text(&row["cause"]),
                        text(&row["currency"]),
                        text(&row["count"]),
                        text(&row["written_off_minor"]),
                        text(&row["recovered_minor"]),
                        text(&row["net_minor"]),
                    ]
                })
                .collect();
            table(&["channel", "cause", "cur", "losses", "written off", "recovered", "net"], &data);
        }
    }
}
