//! Where the PostgreSQL books are, and how that prints: the URL may carry a password.

use ledger::port::StoreError;
use postgres::{Client, NoTls};

use super::{backend, quote_identifier};

/// Where to connect: a libpq-style URL and the schema to use (created if missing), so that
/// tests and tenants of one database can keep separate books.
#[derive(Clone)]
pub struct PgTarget {
    pub url: String,
    pub schema: String,
}

/// By hand: the URL may carry a password, printed masked.
impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTarget")
            .field("url", &masked_url(&self.url))
            .field("schema", &self.schema)
            .finish()
    }
}

/// A libpq-style URL with any password replaced by `****`, for logs and `Debug`.
pub fn masked_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.find(':') {
                Some(colon) => {
                    format!("{}{}:****{}", &url[..scheme + 3], &credentials[..colon], &url[at..])
                }
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl PgTarget {
    pub fn new(url: impl Into<String>, schema: impl Into<String>) -> PgTarget {
        PgTarget { url: url.into(), schema: schema.into() }
    }

    /// A connection with the schema created and on the search path.
    pub fn connect_client(&self) -> Result<Client, StoreError> {
        self.connect()
    }

    /// Brings the schema up to date: every domain's migrations, in order, once (nodes
    /// starting together take an advisory lock). Every PostgreSQL store calls this as it
    /// connects, so each works alone, whichever is opened first.
    pub fn migrate(&self) -> Result<(), StoreError> {
        super::migrate(&mut self.connect()?, &self.schema)
    }

    /// [`PgTarget::connect_client`] on the async client, for a writer that pipelines its
    /// statements. Its connection runs as a task of the runtime this is called on.
    pub(crate) async fn connect_async(&self) -> Result<tokio_postgres::Client, StoreError> {
        let (client, connection) =
            tokio_postgres::connect(&self.url, NoTls).await.map_err(backend)?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::warn!(%error, "a PostgreSQL connection ended");
            }
        });
        let schema = quote_identifier(&self.schema);
        client
            .batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {schema}; SET search_path TO {schema}"
            ))
            .await
            .map_err(backend)?;
        Ok(client)
    }

    pub(super) fn connect(&self) -> Result<Client, StoreError> {
        let mut client = Client::connect(&self.url, NoTls).map_err(backend)?;
        let schema = quote_identifier(&self.schema);
        client
            .batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {schema}; SET search_path TO {schema}"
            ))
            .map_err(backend)?;
        Ok(client)
    }
}
