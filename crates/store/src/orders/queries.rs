//! The order store's query builders: the SQL of listings and scans, with their parameters,
//! shared by both backends (`?N` placeholders, rewritten for PostgreSQL).

use executor::OrderQuery;
use payments::{OrderId, OrderKind};

use super::{i64_of, limit_of, Param, SELECT};

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
    let (after_ms, after_id) = match after {
        Some((at_ms, id)) => (i64_of(at_ms), id.to_string()),
        None => (-1, String::new()),
    };
    let params = vec![
        Param::Int(i64_of(from_ms)),
        Param::Int(i64_of(to_ms)),
        Param::Int(after_ms),
        Param::Text(after_id),
        Param::Int(limit_of(limit)),
    ];
    (sql, params)
}

pub(super) fn unfinished_params(
    updated_before_ms: u64,
    after: Option<(u64, OrderId)>,
    limit: usize,
) -> Vec<Param> {
    let (after_ms, after_id) = match after {
        Some((at_ms, id)) => (i64_of(at_ms), id.to_string()),
        None => (-1, String::new()),
    };
    vec![
        Param::Int(i64_of(updated_before_ms)),
        Param::Int(after_ms),
        Param::Text(after_id),
        Param::Int(limit_of(limit)),
    ]
}
