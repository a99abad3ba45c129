//! The PostgreSQL types `spin:postgres@4.x` carries that tokio-postgres
//! does not convert by itself: `numeric` as base-10 text (through
//! rust_decimal, as Spin does: NaN, infinities and more than 28
//! significant digits do not convert), ranges of `int4`, `int8` and
//! `numeric`, and `interval` (months, days and microseconds, kept apart as
//! PostgreSQL keeps them).

use std::error::Error;

use bytes::BytesMut;
use postgres_range::{BoundSided, BoundType, Normalizable, Range, RangeBound};
use rust_decimal::Decimal;
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};

use super::postgres::PgError;

/// Whether a range's bound includes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoundKind {
    /// `[` or `]`.
    Inclusive,
    /// `(` or `)`.
    Exclusive,
}

/// One end of a range: `None` when unbounded.
pub type Bound<T> = Option<(T, BoundKind)>;

/// `interval`, as PostgreSQL stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    /// Microseconds.
    pub micros: i64,
    /// Days (not folded into months or microseconds: their length varies).
    pub days: i32,
    /// Months.
    pub months: i32,
}

/// The size of `interval` on the wire: i64 microseconds, i32 days, i32
/// months, big-endian.
const INTERVAL_BYTES: usize = 16;

impl ToSql for Interval {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        out.extend_from_slice(&self.micros.to_be_bytes());
        out.extend_from_slice(&self.days.to_be_bytes());
        out.extend_from_slice(&self.months.to_be_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Interval {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        let raw: &[u8; INTERVAL_BYTES] = raw
            .try_into()
            .map_err(|_| format!("an interval of {} bytes, not {INTERVAL_BYTES}", raw.len()))?;
        let (micros, rest) = raw.split_at(8);
        let (days, months) = rest.split_at(4);
        // The lengths are fixed by the split of a 16-byte array.
        let word = |b: &[u8]| -> [u8; 4] { [b[0], b[1], b[2], b[3]] };
        let mut long = [0u8; 8];
        long.copy_from_slice(micros);
        Ok(Interval {
            micros: i64::from_be_bytes(long),
            days: i32::from_be_bytes(word(days)),
            months: i32::from_be_bytes(word(months)),
        })
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }
}

/// `numeric` as a range's bound type: PostgreSQL does not normalize
/// `numrange` bounds (it is not a discrete type), so neither does this.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct RangeDecimal(pub Decimal);

impl Normalizable for RangeDecimal {
    fn normalize<S: BoundSided>(bound: RangeBound<S, Self>) -> RangeBound<S, Self> {
        bound
    }
}

impl ToSql for RangeDecimal {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        self.0.to_sql(ty, out)
    }

    fn accepts(ty: &Type) -> bool {
        <Decimal as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for RangeDecimal {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Decimal::from_sql(ty, raw).map(RangeDecimal)
    }

    fn accepts(ty: &Type) -> bool {
        <Decimal as FromSql>::accepts(ty)
    }
}

/// A guest's decimal text as a [`Decimal`].
pub fn decimal(text: &str) -> Result<Decimal, PgError> {
    Decimal::from_str_exact(text)
        .map_err(|e| PgError::BadParameter(format!("invalid decimal `{text}`: {e}")))
}

/// Decimals that may be null, from text.
pub fn decimals(texts: &[Option<String>]) -> Result<Vec<Option<Decimal>>, PgError> {
    texts
        .iter()
        .map(|t| t.as_deref().map(decimal).transpose())
        .collect()
}

fn bound_type(kind: BoundKind) -> BoundType {
    match kind {
        BoundKind::Inclusive => BoundType::Inclusive,
        BoundKind::Exclusive => BoundType::Exclusive,
    }
}

fn bound_kind(t: BoundType) -> BoundKind {
    match t {
        BoundType::Inclusive => BoundKind::Inclusive,
        BoundType::Exclusive => BoundKind::Exclusive,
    }
}

/// A guest's range as a PostgreSQL one (an `int4range` or `int8range`
/// comes back normalized to `[lower, upper)`, as PostgreSQL stores it).
pub fn range<T: PartialOrd + Normalizable>(lower: Bound<T>, upper: Bound<T>) -> Range<T> {
    Range::new(
        lower.map(|(v, k)| RangeBound::new(v, bound_type(k))),
        upper.map(|(v, k)| RangeBound::new(v, bound_type(k))),
    )
}

/// A PostgreSQL range as the guest's pair of bounds, each bound's value
/// mapped by `f`; the empty range has neither bound.
pub fn bounds<T: PartialOrd + Normalizable, U>(
    range: &Range<T>,
    f: impl Fn(&T) -> U,
) -> (Bound<U>, Bound<U>) {
    (
        range.lower().map(|b| (f(&b.value), bound_kind(b.type_))),
        range.upper().map(|b| (f(&b.value), bound_kind(b.type_))),
    )
}

/// A guest's decimal range, its bounds checked.
pub fn decimal_range(
    lower: Bound<String>,
    upper: Bound<String>,
) -> Result<Range<RangeDecimal>, PgError> {
    let parse = |b: Bound<String>| -> Result<Bound<RangeDecimal>, PgError> {
        b.map(|(v, k)| Ok((RangeDecimal(decimal(&v)?), k)))
            .transpose()
    };
    Ok(range(parse(lower)?, parse(upper)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interval_reads_back_what_it_wrote() {
        let interval = Interval {
            micros: -1_500_000,
            days: 3,
            months: 14,
        };
        let mut out = BytesMut::new();
        interval.to_sql(&Type::INTERVAL, &mut out).unwrap();
        assert_eq!(out.len(), INTERVAL_BYTES);
        assert_eq!(Interval::from_sql(&Type::INTERVAL, &out).unwrap(), interval);
        assert!(Interval::from_sql(&Type::INTERVAL, &out[..15]).is_err());
    }

    #[test]
    fn integer_ranges_are_normalized_and_decimal_ranges_are_not() {
        let r = range(
            Some((1, BoundKind::Exclusive)),
            Some((5, BoundKind::Inclusive)),
        );
        assert_eq!(
            bounds(&r, |v| *v),
            (
                Some((2, BoundKind::Inclusive)),
                Some((6, BoundKind::Exclusive))
            )
        );
        let d = decimal_range(
            Some(("1.5".into(), BoundKind::Exclusive)),
            Some(("2.25".into(), BoundKind::Inclusive)),
        )
        .unwrap();
        assert_eq!(
            bounds(&d, |v| v.0.to_string()),
            (
                Some(("1.5".to_owned(), BoundKind::Exclusive)),
                Some(("2.25".to_owned(), BoundKind::Inclusive))
            )
        );
        assert_eq!(bounds(&range::<i32>(None, None), |v| *v), (None, None));
    }

    #[test]
    fn a_decimal_that_is_not_one_is_a_bad_parameter_naming_it() {
        let e = decimal("12,5").unwrap_err();
        assert!(
            matches!(&e, PgError::BadParameter(m) if m.contains("`12,5`")),
            "{e:?}"
        );
        assert_eq!(decimal("-0.001").unwrap().to_string(), "-0.001");
    }
}
