//! The SELECT-only check of raw SQL, on its parsed AST.
//!
//! Accepted: exactly one query (`SELECT`, `WITH`, set operations, `VALUES`) whose relations are
//! the store's tables, its own CTEs or subqueries. Refused before planning: several statements,
//! DDL, DML, `COPY`, `CREATE`, `SET`, `EXPLAIN ANALYZE` and every other non-query statement,
//! `SELECT … INTO`, data-modifying CTEs, table functions (`read_parquet(…)`, `read_csv(…)`,
//! `generate_series(…)`, …) and any relation that is not a store table (a file path or URL,
//! another catalog). DataFusion's own `SQLOptions` (no DDL, no DML, no statements) checks the plan
//! again.
use crate::error::{Error, Result};
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use podwire_schemas::Table;
use sqlparser::ast::{self as sql, Visit, Visitor};
use std::ops::ControlFlow;

/// Parses `text` and returns its statement if it is one read-only query over the store.
///
/// # Errors
/// [`Error::Sql`] when it does not parse, [`Error::Rejected`] when it is not a read-only query.
pub fn check(text: &str) -> Result<sql::Statement> {
    let mut statements =
        DFParser::parse_sql(text).map_err(|e| Error::Sql(e.find_root().to_string()))?;
    if statements.len() != 1 {
        return Err(Error::Rejected(format!(
            "expected exactly one SELECT statement, got {}",
            statements.len()
        )));
    }
    let Some(DfStatement::Statement(statement)) = statements.pop_front() else {
        return Err(Error::Rejected("only SELECT queries are allowed".into()));
    };
    let statement = *statement;
    let sql::Statement::Query(_) = &statement else {
        return Err(Error::Rejected(format!(
            "only SELECT queries are allowed, not `{}`",
            first_words(&statement.to_string())
        )));
    };
    let mut checker = Checker { ctes: Vec::new() };
    if let ControlFlow::Break(reason) = statement.visit(&mut checker) {
        return Err(Error::Rejected(reason));
    }
    Ok(statement)
}

struct Checker {
    /// CTE names seen so far; a relation may name one of them.
    ctes: Vec<String>,
}

impl Visitor for Checker {
    type Break = String;

    fn pre_visit_query(&mut self, query: &sql::Query) -> ControlFlow<String> {
        if let Some(with) = &query.with {
            self.ctes.extend(with.cte_tables.iter().map(|c| c.alias.name.value.to_lowercase()));
        }
        check_body(&query.body)
    }

    fn pre_visit_table_factor(&mut self, factor: &sql::TableFactor) -> ControlFlow<String> {
        match factor {
            sql::TableFactor::Table { name, args: None, .. } => {
                let ok = match name.0.as_slice() {
                    [part] => part.as_ident().is_some_and(|i| {
                        let n = i.value.to_lowercase();
                        Table::ALL.iter().any(|t| t.name() == n) || self.ctes.contains(&n)
                    }),
                    _ => false,
                };
                if ok {
                    ControlFlow::Continue(())
                } else {
                    ControlFlow::Break(format!(
                        "`{name}` is not a table of the store (tables: {})",
                        Table::ALL.map(Table::name).join(", ")
                    ))
                }
            }
            sql::TableFactor::Table { name, .. } => {
                ControlFlow::Break(format!("table functions are not allowed: `{name}(…)`"))
            }
            sql::TableFactor::Derived { .. }
            | sql::TableFactor::NestedJoin { .. }
            | sql::TableFactor::UNNEST { .. } => ControlFlow::Continue(()),
            other => ControlFlow::Break(format!(
                "not allowed in FROM: `{}`",
                first_words(&other.to_string())
            )),
        }
    }
}

fn check_body(body: &sql::SetExpr) -> ControlFlow<String> {
    match body {
        sql::SetExpr::Select(s) if s.into.is_some() => {
            ControlFlow::Break("SELECT … INTO writes a table: not allowed".into())
        }
        sql::SetExpr::Select(_) | sql::SetExpr::Values(_) | sql::SetExpr::Query(_) => {
            ControlFlow::Continue(())
        }
        sql::SetExpr::SetOperation { left, right, .. } => {
            check_body(left)?;
            check_body(right)
        }
        sql::SetExpr::Table(_) => ControlFlow::Break("use SELECT * FROM <table>".into()),
        other => ControlFlow::Break(format!(
            "only SELECT queries are allowed, not `{}`",
            first_words(&other.to_string())
        )),
    }
}

/// The statement's first words, to name it in a message without echoing all of it.
fn first_words(text: &str) -> String {
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn rejected(text: &str, want: &str) {
        match check(text) {
            Err(Error::Rejected(m)) => assert!(m.contains(want), "{text}: {m}"),
            Err(e) => panic!("{text}: not rejected but {e}"),
            Ok(_) => panic!("{text}: accepted"),
        }
    }

    #[test]
    fn accepts_queries() {
        for q in [
            "SELECT * FROM connections",
            "select count(*) from DNS where rcode <> 'NOERROR'",
            "WITH x AS (SELECT src_ip FROM connections) SELECT * FROM x",
            "SELECT a.src_ip FROM connections a JOIN dns d ON a.src_ip = d.src_ip",
            "SELECT * FROM (SELECT 1) t UNION ALL SELECT 2",
            "SELECT 1",
            "VALUES (1)",
        ] {
            check(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        }
    }

    #[test]
    fn rejects_the_rest() {
        rejected("SELECT 1; SELECT 2", "exactly one");
        rejected("DROP TABLE connections", "only SELECT");
        rejected("DELETE FROM connections", "only SELECT");
        rejected("INSERT INTO connections VALUES (1)", "only SELECT");
        rejected("CREATE TABLE t AS SELECT 1", "only SELECT");
        rejected("CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '/etc'", "only SELECT");
        rejected("COPY connections TO '/tmp/x.parquet'", "only SELECT");
        rejected("SET datafusion.execution.batch_size = 1", "only SELECT");
        rejected("EXPLAIN SELECT 1", "only SELECT");
        rejected("SELECT * FROM read_parquet('/etc/passwd')", "table functions");
        rejected("SELECT * FROM read_csv('/etc/passwd')", "table functions");
        rejected("SELECT * FROM '/etc/passwd'", "not a table of the store");
        rejected("SELECT * FROM information_schema.tables", "not a table of the store");
        rejected("SELECT * FROM secrets", "not a table of the store");
        rejected("SELECT * INTO t FROM connections", "INTO");
        rejected("SELECT * FROM (SELECT * FROM generate_series(1, 3)) t", "table functions");
    }
}
