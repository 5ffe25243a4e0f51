//! The equality tests a query makes of a text field with a string literal (`dst.pod == "x"`),
//! outside any negation: the names a user expects to exist. `podwire why-not` checks each one
//! alone when the whole filter finds nothing.
use crate::ast::{CompareOp, Expr, Literal};
use crate::fields::{self, Field, FieldType};

/// `field == "value"` in a query.
#[derive(Debug, Clone)]
pub struct Term {
    /// The field, as the catalog spells it.
    pub field: &'static Field,
    /// The literal.
    pub value: String,
}

impl Term {
    /// The term as a KFL filter of its own.
    pub fn kfl(&self) -> String {
        format!("{} == {}", self.field.name, quote(&self.value))
    }
}

/// A KFL string literal of `s`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The terms of `expr`, in query order, each once. Terms under `!` are left out: a name the
/// user excludes is not one they expect to see.
pub fn terms(expr: &Expr) -> Vec<Term> {
    let mut out = Vec::new();
    walk(expr, &mut out);
    out
}

fn walk(expr: &Expr, out: &mut Vec<Term>) {
    match expr {
        Expr::Logical { lhs, rhs, .. } => {
            walk(lhs, out);
            walk(rhs, out);
        }
        Expr::Group(e, _) => walk(e, out),
        Expr::Compare { op: CompareOp::Eq, lhs, rhs, .. } => {
            let (path, lit) = match (&**lhs, &**rhs) {
                (Expr::Path(p), Expr::Literal(Literal::Str(s), _))
                | (Expr::Literal(Literal::Str(s), _), Expr::Path(p)) => (p, s),
                _ => return,
            };
            let Some(field) = fields::lookup(&path.key()) else { return };
            let seen = out.iter().any(|t| t.field.name == field.name && t.value == *lit);
            if field.ty == FieldType::Str && !lit.is_empty() && !seen {
                out.push(Term { field, value: lit.clone() });
            }
        }
        // `!…` (and `-…`): not a name the user expects to see.
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(q: &str) -> Vec<String> {
        terms(&crate::parse(q).unwrap().unwrap()).iter().map(Term::kfl).collect()
    }

    #[test]
    fn equality_tests_of_text_fields_outside_negations() {
        assert_eq!(
            of(r#"dst.pod == "cart-1" and ("x" == src.namespace or dst.port == 80)"#),
            [r#"dst.pod == "cart-1""#, r#"src.namespace == "x""#]
        );
        assert_eq!(
            of(r#"!(dst.pod == "a") and dst.name != "b" and dst.ip == """#),
            Vec::<String>::new()
        );
        assert_eq!(of(r#"dst.pod == "a" or dst.pod == "a""#), [r#"dst.pod == "a""#]);
        assert_eq!(of(r#"dst.dns == "q\"x""#), [r#"dst.dns == "q\"x""#]);
    }
}
