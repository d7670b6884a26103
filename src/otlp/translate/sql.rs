//! The `sql` block, for spans whose `db.system` is an SQL database.

use super::json::Object;
use super::span::{AnyValue, Attributes};
use super::truncated;
use std::borrow::Cow;

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

/// Appends the `sql` block's value to `out` (members in key order); whether there was one
/// (nothing is written for spans that are not SQL calls).
pub fn write(attributes: &Attributes<'_>, out: &mut Vec<u8>) -> bool {
    let Some(system) = attributes
        .peek("db.system")
        .or_else(|| attributes.peek("db.system.name"))
        .and_then(AnyValue::as_str)
    else {
        return false;
    };
    if !SQL_SYSTEMS.contains(&system) {
        return false;
    }
    let database_type = attributes.text_ref(&["db.system", "db.system.name"]);
    let database = attributes.text_ref(&["db.name", "db.namespace"]);
    let url = attributes
        .text_ref(&["db.connection_string"])
        .or_else(|| {
            let host = attributes.peek("server.address")?.text()?;
            Some(
                match attributes.peek("server.port").and_then(AnyValue::as_int) {
                    Some(port) => Cow::Owned(format!("{host}:{port}")),
                    None => host,
                },
            )
        })
        .map(|url| match &database {
            Some(db) => Cow::Owned(format!("{url}/{db}")),
            None => url,
        });
    let user = attributes.text_ref(&["db.user"]);
    let query = attributes.text_ref(&["db.query.text", "db.statement"]);
    // An SQL span always has its block, if only `{}`.
    let mut sql = Object::begin(out);
    for (key, value) in [
        ("database_type", database_type),
        ("sanitized_query", query),
        ("url", url),
        ("user", user),
    ] {
        sql.text(out, key, value.as_deref().map(truncated));
    }
    if !sql.end(out) {
        out.extend_from_slice(b"{}");
    }
    true
}
