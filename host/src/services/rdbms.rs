//! What every outbound database ([`super::postgres`], [`super::mysql`])
//! answers, in the shape Spin's interfaces share (`fermyon:spin`'s
//! `rdbms-types` and its successors): a result's columns and rows, and
//! Spin's error variants.

/// A query's result: column names and types, then rows with their values
/// in column order. `T` and `V` are the database's own types and values.
#[derive(Debug, Clone, PartialEq)]
pub struct Rows<T, V> {
    /// Column names and types.
    pub columns: Vec<(String, T)>,
    /// Rows, values in column order.
    pub rows: Vec<Vec<V>>,
}

// Not derived: a derive would ask `T` and `V` for a default as well.
impl<T, V> Default for Rows<T, V> {
    fn default() -> Self {
        Self {
            columns: Vec::new(),
            rows: Vec::new(),
        }
    }
}

/// Why a database call failed, in Spin's terms.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// `connection-failed`.
    #[error("{0}")]
    ConnectionFailed(String),
    /// `bad-parameter`.
    #[error("{0}")]
    BadParameter(String),
    /// `query-failed`.
    #[error("{0}")]
    QueryFailed(String),
    /// `value-conversion-failed`.
    #[error("{0}")]
    ValueConversionFailed(String),
    /// `other`.
    #[error("{0}")]
    Other(String),
}
