//! Every operation of the API as `(method, path template)`, named after its `operationId` in
//! docs/openapi.json. Each client method builds its request from its constant here, and
//! [`OPERATIONS`] lists them all, so the test that compares it with the document checks the
//! paths the client really calls.

/// `(method, path template)`: the template's `{…}` placeholders are filled in order.
pub type Route = (&'static str, &'static str);

// ledger: books, accounts, transfers
pub const CREATE_ACCOUNT: Route = ("POST", "/v1/accounts");
pub const GET_ACCOUNT: Route = ("GET", "/v1/accounts/{id}");
pub const GET_BALANCE: Route = ("GET", "/v1/accounts/{id}/balance");
pub const LIST_ENTRIES: Route = ("GET", "/v1/accounts/{id}/entries");
pub const SET_ACCOUNT_STATUS: Route = ("POST", "/v1/accounts/{id}/status");
pub const CREATE_ASSET: Route = ("POST", "/v1/assets");
pub const CREATE_CHART: Route = ("POST", "/v1/chart");
pub const VERIFY_JOURNAL: Route = ("POST", "/v1/journal/verify");
pub const JOURNAL_HEAD: Route = ("GET", "/v1/journal/head");
pub const CREATE_TRANSFER: Route = ("POST", "/v1/transfers");
pub const CREATE_BATCH: Route = ("POST", "/v1/transfers/batch");
pub const GET_TRANSFER: Route = ("GET", "/v1/transfers/{id}");
pub const POST_PENDING: Route = ("POST", "/v1/transfers/{id}/post");
pub const VOID_PENDING: Route = ("POST", "/v1/transfers/{id}/void");
pub const TRIAL_BALANCE: Route = ("GET", "/v1/trial-balance");

// keys: API keys
pub const LIST_KEYS: Route = ("GET", "/v1/keys");
pub const CREATE_KEY: Route = ("POST", "/v1/keys");
pub const REVOKE_KEY: Route = ("DELETE", "/v1/keys/{id}");

// parties: customers and merchants
pub const CREATE_CUSTOMER: Route = ("POST", "/v1/customers");
pub const GET_CUSTOMER: Route = ("GET", "/v1/customers/{id}");
pub const CREATE_MERCHANT: Route = ("POST", "/v1/merchants");
pub const GET_MERCHANT: Route = ("GET", "/v1/merchants/{id}");

// payments: the payment core's products
pub const GRANT_POINTS: Route = ("POST", "/v1/customers/{id}/points");
pub const LIST_FX_RATES: Route = ("GET", "/v1/fx-rates");
pub const SET_FX_RATE: Route = ("PUT", "/v1/fx-rates");
pub const CREATE_PAYOUT_BATCH: Route = ("POST", "/v1/merchants/{id}/payout-batches");
pub const SETTLE_MERCHANT: Route = ("POST", "/v1/merchants/{id}/settlements");
pub const CREATE_PAYMENT: Route = ("POST", "/v1/payments");
pub const CANCEL_PAYMENT: Route = ("POST", "/v1/payments/{id}/cancel");
pub const CAPTURE_PAYMENT: Route = ("POST", "/v1/payments/{id}/capture");
pub const CREATE_REFUND: Route = ("POST", "/v1/payments/{id}/refunds");
pub const GET_PAYOUT_BATCH: Route = ("GET", "/v1/payout-batches/{id}");
pub const CREATE_TOPUP: Route = ("POST", "/v1/topups");
pub const CREATE_WALLET_TRANSFER: Route = ("POST", "/v1/wallet-transfers");
pub const CREATE_WITHDRAWAL: Route = ("POST", "/v1/withdrawals");

// orders: orders, their events, inspection, channel callbacks
pub const CHANNEL_CALLBACK: Route = ("POST", "/channel-callbacks/{channel}");
pub const LIST_EVENTS: Route = ("GET", "/v1/events");
pub const RUN_INSPECTION: Route = ("POST", "/v1/inspection");
pub const LIST_ORDERS: Route = ("GET", "/v1/orders");
pub const GET_ORDER: Route = ("GET", "/v1/orders/{id}");

// webhooks: webhook endpoints and deliveries
pub const LIST_DELIVERIES: Route = ("GET", "/v1/webhook-deliveries");
pub const RETRY_DELIVERY: Route = ("POST", "/v1/webhook-deliveries/{id}/retry");
pub const LIST_ENDPOINTS: Route = ("GET", "/v1/webhook-endpoints");
pub const CREATE_ENDPOINT: Route = ("POST", "/v1/webhook-endpoints");
pub const DISABLE_ENDPOINT: Route = ("DELETE", "/v1/webhook-endpoints/{id}");

// recon: statements, runs, losses
pub const LOSS_REPORT: Route = ("GET", "/v1/recon/loss-report");
pub const LIST_LOSSES: Route = ("GET", "/v1/recon/losses");
pub const GET_LOSS: Route = ("GET", "/v1/recon/losses/{id}");
pub const LIST_RUNS: Route = ("GET", "/v1/recon/runs");
pub const START_RUN: Route = ("POST", "/v1/recon/runs");
pub const GET_RUN: Route = ("GET", "/v1/recon/runs/{id}");
pub const LIST_STATEMENTS: Route = ("GET", "/v1/recon/statements");
pub const UPLOAD_STATEMENT: Route = ("POST", "/v1/recon/statements");
pub const FETCH_STATEMENT: Route = ("POST", "/v1/recon/statements/fetch");
pub const GET_STATEMENT: Route = ("GET", "/v1/recon/statements/{id}");
pub const GET_STATEMENT_CONTENT: Route = ("GET", "/v1/recon/statements/{id}/content");

// breaks: breaks and their resolution
pub const LIST_BREAKS: Route = ("GET", "/v1/recon/breaks");
pub const GET_BREAK: Route = ("GET", "/v1/recon/breaks/{id}");
pub const APPROVE_RESOLUTION: Route = ("POST", "/v1/recon/breaks/{id}/approve");
pub const ASSIGN_BREAK: Route = ("POST", "/v1/recon/breaks/{id}/assign");
pub const PROPOSE_RESOLUTION: Route = ("POST", "/v1/recon/breaks/{id}/propose");
pub const REJECT_RESOLUTION: Route = ("POST", "/v1/recon/breaks/{id}/reject");

// days: closed business days
pub const LIST_DAYS: Route = ("GET", "/v1/recon/days");
pub const GET_DAY: Route = ("GET", "/v1/recon/days/{day}");
pub const GET_CHANNELS_CSV: Route = ("GET", "/v1/recon/days/{day}/channels.csv");
pub const CLOSE_DAY: Route = ("POST", "/v1/recon/days/{day}/close");
pub const GET_MERCHANTS_CSV: Route = ("GET", "/v1/recon/days/{day}/merchants.csv");
pub const GET_DAY_CSV: Route = ("GET", "/v1/recon/days/{day}/trial-balance.csv");

// checks: cross-checks and fund-safety alerts
pub const LIST_ALERTS: Route = ("GET", "/v1/recon/alerts");
pub const LIST_CHECKS: Route = ("GET", "/v1/recon/checks");
pub const RUN_CHECKS: Route = ("POST", "/v1/recon/checks");
pub const GET_CHECK: Route = ("GET", "/v1/recon/checks/{id}");

// ops: inquiries, orders and actions for operators, the audit log, overview
pub const LIST_ACTIONS: Route = ("GET", "/v1/ops/actions");
pub const GET_ACTION: Route = ("GET", "/v1/ops/actions/{id}");
pub const APPROVE_ACTION: Route = ("POST", "/v1/ops/actions/{id}/approve");
pub const REJECT_ACTION: Route = ("POST", "/v1/ops/actions/{id}/reject");
pub const LIST_AUDIT: Route = ("GET", "/v1/ops/audit");
pub const VERIFY_AUDIT: Route = ("GET", "/v1/ops/audit/verify");
pub const BALANCE_SHEET_VIEW: Route = ("GET", "/v1/ops/balance-sheet");
pub const LIST_ESCALATED: Route = ("GET", "/v1/ops/inquiries/escalated");
pub const ASK_NOW: Route = ("POST", "/v1/ops/inquiries/{channel}/{request_id}/ask");
pub const PROPOSE_OUTCOME: Route = ("POST", "/v1/ops/inquiries/{channel}/{request_id}/outcome");
pub const LIST_EXCEPTIONS: Route = ("GET", "/v1/ops/orders/exceptions");
pub const LIST_OVERDUE: Route = ("GET", "/v1/ops/orders/overdue");
pub const PROPOSE_RETURN: Route = ("POST", "/v1/ops/orders/{id}/return");
pub const OVERVIEW: Route = ("GET", "/v1/ops/overview");

// switches: switches and contingency plans
pub const LIST_PLANS: Route = ("GET", "/v1/ops/plans");
pub const ROLLBACK_PLAN: Route = ("POST", "/v1/ops/plans/{name}/rollback");
pub const RUN_PLAN: Route = ("POST", "/v1/ops/plans/{name}/run");
pub const LIST_SWITCHES: Route = ("GET", "/v1/ops/switches");
pub const SET_SWITCH: Route = ("POST", "/v1/ops/switches");
pub const ROLLBACK_SWITCH: Route = ("POST", "/v1/ops/switches/rollback");
pub const SWITCH_VERSIONS: Route = ("GET", "/v1/ops/switches/versions");

// health: health, readiness, metrics, the document
pub const HEALTHZ: Route = ("GET", "/healthz");
pub const METRICS: Route = ("GET", "/metrics");
pub const READYZ: Route = ("GET", "/readyz");
pub const OPENAPI_JSON: Route = ("GET", "/v1/openapi.json");

/// Every operation the client implements: exactly the document's set (a test keeps it so).
pub const OPERATIONS: &[Route] = &[
    // ledger
    CREATE_ACCOUNT,
    GET_ACCOUNT,
    GET_BALANCE,
    LIST_ENTRIES,
    SET_ACCOUNT_STATUS,
    CREATE_ASSET,
    CREATE_CHART,
    VERIFY_JOURNAL,
    JOURNAL_HEAD,
    CREATE_TRANSFER,
    CREATE_BATCH,
    GET_TRANSFER,
    POST_PENDING,
    VOID_PENDING,
    TRIAL_BALANCE,
    // keys
    LIST_KEYS,
    CREATE_KEY,
    REVOKE_KEY,
    // parties
    CREATE_CUSTOMER,
    GET_CUSTOMER,
    CREATE_MERCHANT,
    GET_MERCHANT,
    // payments
    GRANT_POINTS,
    LIST_FX_RATES,
    SET_FX_RATE,
    CREATE_PAYOUT_BATCH,
    SETTLE_MERCHANT,
    CREATE_PAYMENT,
    CANCEL_PAYMENT,
    CAPTURE_PAYMENT,
    CREATE_REFUND,
    GET_PAYOUT_BATCH,
    CREATE_TOPUP,
    CREATE_WALLET_TRANSFER,
    CREATE_WITHDRAWAL,
    // orders
    CHANNEL_CALLBACK,
    LIST_EVENTS,
    RUN_INSPECTION,
    LIST_ORDERS,
    GET_ORDER,
    // webhooks
    LIST_DELIVERIES,
    RETRY_DELIVERY,
    LIST_ENDPOINTS,
    CREATE_ENDPOINT,
    DISABLE_ENDPOINT,
    // recon
    LOSS_REPORT,
    LIST_LOSSES,
    GET_LOSS,
    LIST_RUNS,
    START_RUN,
    GET_RUN,
    LIST_STATEMENTS,
    UPLOAD_STATEMENT,
    FETCH_STATEMENT,
    GET_STATEMENT,
    GET_STATEMENT_CONTENT,
    // breaks
    LIST_BREAKS,
    GET_BREAK,
    APPROVE_RESOLUTION,
    ASSIGN_BREAK,
    PROPOSE_RESOLUTION,
    REJECT_RESOLUTION,
    // days
    LIST_DAYS,
    GET_DAY,
    GET_CHANNELS_CSV,
    CLOSE_DAY,
    GET_MERCHANTS_CSV,
    GET_DAY_CSV,
    // checks
    LIST_ALERTS,
    LIST_CHECKS,
    RUN_CHECKS,
    GET_CHECK,
    // ops
    LIST_ACTIONS,
    GET_ACTION,
    APPROVE_ACTION,
    REJECT_ACTION,
    LIST_AUDIT,
    VERIFY_AUDIT,
    BALANCE_SHEET_VIEW,
    LIST_ESCALATED,
    ASK_NOW,
    PROPOSE_OUTCOME,
    LIST_EXCEPTIONS,
    LIST_OVERDUE,
    PROPOSE_RETURN,
    OVERVIEW,
    // switches
    LIST_PLANS,
    ROLLBACK_PLAN,
    RUN_PLAN,
    LIST_SWITCHES,
    SET_SWITCH,
    ROLLBACK_SWITCH,
    SWITCH_VERSIONS,
    // health
    HEALTHZ,
    METRICS,
    READYZ,
    OPENAPI_JSON,
];
