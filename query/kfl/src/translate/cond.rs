//! The condition a query of either dialect is checked into: independent of the table.
use crate::ast::CompareOp;
use crate::fields::Field;

/// A boolean condition over one entry, independent of the table: what both dialects check a
/// query into. Each atom is two-valued: on a table without the field, or on a NULL, it is FALSE
/// unless wrapped in [`Cond::Default`].
#[derive(Debug, Clone)]
pub(crate) enum Cond {
    Const(bool),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
    Alias(&'static str),
    /// `field op value`, the value already in column units.
    Cmp {
        field: &'static Field,
        op: CompareOp,
        value: Value,
    },
    FieldCmp {
        lhs: &'static Field,
        op: CompareOp,
        rhs: &'static Field,
    },
    Regex {
        field: &'static Field,
        negated: bool,
        pattern: String,
    },
    Helper {
        func: &'static str,
        field: &'static Field,
        arg: Arg,
    },
    Truthy(&'static Field),
    Nil {
        field: &'static Field,
        negated: bool,
    },
    ListHas {
        field: &'static Field,
        negated: bool,
        value: String,
    },
    /// `length(field) op n` (characters of text, elements of a list).
    Len {
        field: &'static Field,
        op: CompareOp,
        n: f64,
    },
    /// KFL2's defaults: `inner` (an atom on `field`) where the field has a value, and the
    /// constant `otherwise` where it has none (the table lacks it, or the value is NULL), which
    /// is what the atom gives on the variable's default (`""`, `0`, `false`, `[]`).
    Default {
        inner: Box<Cond>,
        field: &'static Field,
        otherwise: bool,
    },
}

#[derive(Debug, Clone)]
pub(crate) enum Value {
    Str(String),
    Num(f64),
    /// An exact integer (KFL2's `int`; connection ids exceed 2^53).
    Int(i64),
    Bool(bool),
    TimeMs(i64),
}

#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Str(String),
    Field(&'static Field),
}
