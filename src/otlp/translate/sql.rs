//! The `sql` block, for spans whose `db.system` is an SQL database.

use super::span::{AnyValue, Attributes};
use super::truncate;
use serde_json::{Map, Value};

/// The `db.system` values of SQL databases (semantic conventions' list).
const SQL_SYSTEMS: &[&str] = &[
    "db2",
    "derby",
    "edb",
    "firebird",
    "h2",
    "hanadb",
    "hsqldb",
    "informix",
    "ingres",
    "instantdb",
    "interbase",
    "mariadb",
    "maxdb",
    "mssql",
    "mysql",
    "netezza",
    "oracle",
    "other_sql",
    "pervasive",
    "pointbase",
    "postgresql",
    "progress",
    "redshift",
    "sqlite",
    "sybase",
    "teradata",
    "vertica",
];

/// The `sql` block, or `None` for spans that are not SQL calls.
pub fn block(attributes: &Attributes<'_>) -> Option<Value> {
    let system = attributes
        .peek("db.system")
        .or_else(|| attributes.peek("db.system.name"))
        .and_then(AnyValue::as_str)?;
    if !SQL_SYSTEMS.contains(&system) {
        return None;
    }
    let mut sql = Map::new();
    let mut put = |key: &str, value: Option<String>| {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            sql.insert(key.into(), Value::String(truncate(value)));
        }
    };
    put(
        "database_type",
        attributes.text(&["db.system", "db.system.name"]),
    );
    let database = attributes.text(&["db.name", "db.namespace"]);
    let url = attributes
        .text(&["db.connection_string"])
        .or_else(|| {
            let host = attributes.peek("server.address")?.to_text()?;
            Some(
                match attributes.peek("server.port").and_then(AnyValue::as_int) {
                    Some(port) => format!("{host}:{port}"),
                    None => host,
                },
            )
        })
        .map(|url| match &database {
            Some(db) => format!("{url}/{db}"),
            None => url,
        });
    put("url", url);
    put("user", attributes.text(&["db.user"]));
    put(
        "sanitized_query",
        attributes.text(&["db.query.text", "db.statement"]),
    );
    Some(Value::Object(sql))
}
