//! The order store's query builders: the SQL of listings and scans, with their parameters,
//! shared by both backends (`?N` placeholders, rewritten for PostgreSQL).

use executor::OrderQuery;
use payments::{OrderId, OrderKind};

use super::{i64_of, limit_of, Param, SELECT};

// The totals that guard refunds and settlements name order kinds and state names as SQL
// literals; `the_totals_name_kinds_and_states_that_exist` ties each literal to the enum it
// copies, so a renamed state fails a test instead of silently changing a sum.
// SUM over BIGINT is NUMERIC in PostgreSQL: cast back (the totals never pass one amount).
pub(super) const REFUND_TOTALS: &str = "SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT), \
     CAST(COALESCE(SUM(fee_minor), 0) AS BIGINT), CAST(COALESCE(SUM(leg_minor), 0) AS BIGINT) \
     FROM orders WHERE parent = ?1 AND kind IN ('refund', 'card_refund') AND status <> 'failed'";
pub(super) const MERCHANT_TOTALS: &str = "SELECT \
     CAST(COALESCE(SUM(CASE WHEN kind IN ('payment', 'card_payment') AND status = 'succeeded' AND created_at_ms < ?3 \
         THEN amount_minor - fee_minor ELSE 0 END), 0) AS BIGINT), \
     CAST(COALESCE(SUM(CASE WHEN kind IN ('refund', 'card_refund') AND status NOT IN ('failed', 'disputed') AND from_settled = 0 \
         THEN amount_minor - fee_minor ELSE 0 END), 0) AS BIGINT), \
     CAST(COALESCE(SUM(CASE WHEN kind = 'settlement' AND status <> 'failed' \
         THEN amount_minor ELSE 0 END), 0) AS BIGINT) \
     FROM orders WHERE merchant = ?1 AND asset = ?2";
/// Final orders an operator must act on, from a cursor `(?1, ?2)`, oldest change first. The
/// states are named as SQL literals (a partial index covers them: migrations SQLite 5,
/// PostgreSQL 17); `needing_operator_names_the_states_that_need_one` ties them to
/// `payments::Order::needs_operator`.
pub(super) const NEEDING_OPERATOR: &str = "SELECT tenant, reference, request_fingerprint, parent, \
     body, version, created_at_ms, updated_at_ms, body_version FROM orders \
     WHERE status IN ('suspended', 'disputed') \
     AND (updated_at_ms > ?1 OR (updated_at_ms = ?1 AND id > ?2)) \
     ORDER BY updated_at_ms, id LIMIT ?3";

/// The SQL and parameters of a listing.
pub(super) fn list_sql(query: &OrderQuery) -> (String, Vec<Param>) {
    let mut sql = format!("{SELECT} WHERE tenant = ?1");
    let mut params = vec![Param::Text(query.tenant.clone())];
    let mut push = |sql: &mut String, clause: &str, param: Param| {
        params.push(param);
        sql.push_str(&clause.replace("?#", &format!("?{}", params.len())));
    };
    if let Some(kind) = query.kind {
        push(&mut sql, " AND kind = ?#", Param::Text(kind.as_str().into()));
    }
    if let Some(status) = &query.status {
        push(&mut sql, " AND status = ?#", Param::Text(status.clone()));
    }
    if let Some(customer) = &query.customer {
        push(&mut sql, " AND customer = ?#", Param::Text(customer.clone()));
    }
    if let Some(merchant) = &query.merchant {
        push(&mut sql, " AND merchant = ?#", Param::Text(merchant.clone()));
    }
    if let Some(from_ms) = query.created_from_ms {
        push(&mut sql, " AND created_at_ms >= ?#", Param::Int(i64_of(from_ms)));
    }
    if let Some(to_ms) = query.created_to_ms {
        push(&mut sql, " AND created_at_ms < ?#", Param::Int(i64_of(to_ms)));
    }
    if let Some((at_ms, id)) = &query.before {
        push(&mut sql, " AND (created_at_ms < ?#", Param::Int(i64_of(*at_ms)));
        push(&mut sql, " OR (created_at_ms = ?#", Param::Int(i64_of(*at_ms)));
        push(&mut sql, " AND id < ?#))", Param::Text(id.to_string()));
    }
    push(
        &mut sql,
        " ORDER BY created_at_ms DESC, id DESC LIMIT ?#",
        Param::Int(limit_of(query.limit)),
    );
    (sql, params)
}

/// The SQL dialect a query is written for.
#[derive(Clone, Copy)]
pub(super) enum Dialect {
    Sqlite,
    Postgres,
}

/// The condition of a scan of `orders_by_created` after the cursor `(?3, ?4)`.
pub(super) fn cursor_sql(dialect: Dialect) -> &'static str {
    // PostgreSQL starts its index scan of `orders_by_created` at a row-value cursor; spelled
    // as an OR of the two columns it scanned every row from the day's start for each page.
    // SQLite plans the OR form better (measured with `qianbao recon bench`).
    match dialect {
        Dialect::Sqlite => "(created_at_ms > ?3 OR (created_at_ms = ?3 AND id > ?4))",
        Dialect::Postgres => "(created_at_ms, id) > (?3, ?4)",
    }
}

/// The query of [`OrderStore::created_between`]: the kinds' names come from the enum (never
/// from input), so the set in SQL is the set the caller named.
///
/// [`OrderStore::created_between`]: executor::OrderStore::created_between
pub(super) fn created_between_query(
    dialect: Dialect,
    kinds: &[OrderKind],
    from_ms: u64,
    to_ms: u64,
    after: Option<(u64, OrderId)>,
    limit: usize,
) -> (String, Vec<Param>) {
    let kinds: Vec<String> = kinds.iter().map(|kind| format!("'{}'", kind.as_str())).collect();
    let kinds = if kinds.is_empty() { "NULL".to_string() } else { kinds.join(", ") };
    let cursor = cursor_sql(dialect);
    let sql = format!(
        "{SELECT} WHERE kind IN ({kinds}) AND created_at_ms >= ?1 AND created_at_ms < ?2 \
         AND {cursor} ORDER BY created_at_ms, id LIMIT ?5"
    );
    (sql, window_params(from_ms, to_ms, after, limit))
}

/// `[from_ms, to_ms)` then a cursor and a limit, as `?1` to `?5`: a scan of
/// `orders_by_created` from a cursor.
pub(super) fn window_params(
    from_ms: u64,
    to_ms: u64,
    after: Option<(u64, OrderId)>,
    limit: usize,
) -> Vec<Param> {
    let mut params = vec![Param::Int(i64_of(from_ms)), Param::Int(i64_of(to_ms))];
    params.extend(cursor_params(after, limit));
    params
}

/// A cursor `(at_ms, id)` and a limit, as `?1, ?2, ?3`.
pub(super) fn cursor_params(after: Option<(u64, OrderId)>, limit: usize) -> Vec<Param> {
    let (after_ms, after_id) = match after {
        Some((at_ms, id)) => (i64_of(at_ms), id.to_string()),
        None => (-1, String::new()),
    };
    vec![Param::Int(after_ms), Param::Text(after_id), Param::Int(limit_of(limit))]
}

pub(super) fn unfinished_params(
    updated_before_ms: u64,
    after: Option<(u64, OrderId)>,
    limit: usize,
) -> Vec<Param> {
    let mut params = vec![Param::Int(i64_of(updated_before_ms))];
    params.extend(cursor_params(after, limit));
    params
}

#[cfg(test)]
mod tests {
    use channels::{ChannelId, Settled};
    use money::Amount;
    use payments::booking::{BookingState, PaymentState};
    use payments::card::CardRefundState;
    use payments::topup::TopUpState;
    use payments::OrderKind;

    use super::{MERCHANT_TOTALS, NEEDING_OPERATOR, REFUND_TOTALS};

    /// Every quoted literal of `sql`.
    fn literals(sql: &str) -> Vec<&str> {
        sql.split('\'').skip(1).step_by(2).collect()
    }

    #[test]
    fn needing_operator_names_the_states_that_need_one() {
        use payments::card::CardRefund;
        use payments::topup::TopUp;
        use payments::withdrawal::Withdrawal;
        use payments::{Order, OrderId};
        let settled = Settled { channel_ref: "r".into(), fee: Amount::ZERO };
        let channel = ChannelId::new("bank_a").expect("channel");
        let cny = money::AssetCode::new("CNY").expect("asset");
        let id = |raw: &str| OrderId::new(raw).expect("id");
        let one = Amount::new(1).expect("amount");
        let topup = TopUp {
            state: TopUpState::Suspended {
                channel: channel.clone(),
                settled: settled.clone(),
                code: "account_frozen".into(),
            },
            ..TopUp::new(id("t"), "c".into(), "card".into(), cny, one)
        };
        let withdrawal = Withdrawal {
            state: payments::withdrawal::WithdrawalState::Disputed {
                channel: channel.clone(),
                settled: settled.clone(),
            },
            ..Withdrawal::new(id("w"), "c".into(), "acct".into(), cny, one)
        };
        let refund = CardRefund {
            source: Default::default(),
            order: id("r"),
            payment: id("p"),
            customer: "c".into(),
            merchant: "m".into(),
            card: "card".into(),
            asset: cny,
            amount: one,
            fee_returned: Amount::ZERO,
            channel,
            debit_request_id: channels::RequestId::new("p:debit").expect("request"),
            from_settled: false,
            state: CardRefundState::Disputed { settled },
        };
        let orders =
            [Order::Topup(topup), Order::Withdrawal(withdrawal), Order::CardRefund(refund)];
        let names: Vec<&str> = orders.iter().map(Order::status).collect();
        assert!(orders.iter().all(Order::needs_operator));
        for name in &names {
            assert!(literals(NEEDING_OPERATOR).contains(name), "{name} is not listed");
        }
        for literal in literals(NEEDING_OPERATOR) {
            assert!(names.contains(&literal), "'{literal}' is no state that needs an operator");
        }
    }

    #[test]
    fn the_totals_name_kinds_and_states_that_exist() {
        let settled = Settled { channel_ref: "r".into(), fee: Amount::ZERO };
        let channel = ChannelId::new("bank_a").expect("channel");
        // The names the totals mean: each kind's, and each state's as its product spells it.
        let mut known: Vec<&str> = OrderKind::ALL.iter().map(|kind| kind.as_str()).collect();
        known.extend([
            PaymentState::Succeeded.name(),
            TopUpState::Succeeded { channel, settled: settled.clone() }.name(),
            BookingState::Failed { code: String::new() }.name(),
            CardRefundState::Failed { reason: String::new() }.name(),
            CardRefundState::Disputed { settled }.name(),
        ]);
        for sql in [REFUND_TOTALS, MERCHANT_TOTALS] {
            for literal in literals(sql) {
                assert!(known.contains(&literal), "'{literal}' is no kind or state any more");
            }
        }
        assert_eq!(
            literals(MERCHANT_TOTALS),
            [
                "payment",
                "card_payment",
                "succeeded",
                "refund",
                "card_refund",
                "failed",
                "disputed",
                "settlement",
                "failed"
            ]
        );
        assert_eq!(literals(REFUND_TOTALS), ["refund", "card_refund", "failed"]);
    }
}
