//! Money as an integer.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::{Add, AddAssign, Sub};

/// An amount of US dollars in nano-dollars (1e-9 USD). Money is an integer
/// everywhere inside the gateway; floats appear only when reading prices from
/// configuration and when printing.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NanoUsd(pub i64);

impl NanoUsd {
    /// Zero dollars.
    pub const ZERO: NanoUsd = NanoUsd(0);
    /// Nano-dollars in one dollar.
    pub const PER_USD: i64 = 1_000_000_000;

    /// Converts a dollar amount read from configuration, rounding to the
    /// nearest nano-dollar. Non-finite values become zero.
    pub fn from_usd(usd: f64) -> Self {
        if !usd.is_finite() {
            return Self::ZERO;
        }
        let nanos = (usd * Self::PER_USD as f64).round();
        // Saturate rather than wrap: prices this large are configuration mistakes.
        Self(nanos.clamp(i64::MIN as f64, i64::MAX as f64) as i64)
    }

    /// The amount in dollars, for display and for LiteLLM-compatible JSON.
    pub fn as_usd(self) -> f64 {
        self.0 as f64 / Self::PER_USD as f64
    }

    /// Adds without overflowing.
    pub fn saturating_add(self, other: NanoUsd) -> NanoUsd {
        NanoUsd(self.0.saturating_add(other.0))
    }
}

impl Add for NanoUsd {
    type Output = NanoUsd;
    fn add(self, rhs: NanoUsd) -> NanoUsd {
        self.saturating_add(rhs)
    }
}

impl AddAssign for NanoUsd {
    fn add_assign(&mut self, rhs: NanoUsd) {
        *self = self.saturating_add(rhs);
    }
}

impl Sub for NanoUsd {
    type Output = NanoUsd;
    fn sub(self, rhs: NanoUsd) -> NanoUsd {
        NanoUsd(self.0.saturating_sub(rhs.0))
    }
}

impl fmt::Debug for NanoUsd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${:.9}", self.as_usd())
    }
}

impl fmt::Display for NanoUsd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${:.6}", self.as_usd())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_round_trip_through_nanos() {
        assert_eq!(NanoUsd::from_usd(0.000_002_5), NanoUsd(2_500));
        assert_eq!(NanoUsd::from_usd(1.5).0, 1_500_000_000);
        assert_eq!(NanoUsd::from_usd(f64::NAN), NanoUsd::ZERO);
        assert!((NanoUsd(2_500).as_usd() - 0.000_002_5).abs() < 1e-15);
    }
}
