//! Owns what an agent's work costs: the tokens and dollars it reports, and
//! its `price` for the kinds that report tokens but no cost
//! (docs/agents.md, "Prices").

use serde::{Deserialize, Serialize};

/// Tokens and dollars an agent reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
}

impl Usage {
    /// Adds `other`'s; token counts saturate (an agent may report any
    /// number), so a sum never wraps around to look small.
    pub(crate) fn add(&mut self, other: Usage) {
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.cost_usd += other.cost_usd;
    }

    pub(crate) fn tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

/// A sum of token counts as agents report them, saturating.
pub(crate) fn sum_tokens(counts: impl IntoIterator<Item = u64>) -> u64 {
    counts.into_iter().fold(0, u64::saturating_add)
}

/// Why a cost an agent reported cannot be counted: budgets add costs up,
/// and a negative one would give back what was spent.
pub(crate) fn cost_error(cost: f64) -> Option<String> {
    (!cost.is_finite() || cost < 0.0).then(|| {
        format!("the agent reported a cost of {cost} USD, which is not a cost: costs are 0 or more")
    })
}

/// An agent's `price`, for backends that report tokens but no cost.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Price {
    /// US dollars per million input tokens.
    pub input_per_mtok: f64,
    /// US dollars per million output tokens.
    pub output_per_mtok: f64,
}

impl Price {
    /// What `input` and `output` tokens cost, in dollars.
    pub(crate) fn cost(self, input: u64, output: u64) -> f64 {
        #[expect(
            clippy::cast_precision_loss,
            reason = "token counts stay far below 2^52"
        )]
        let (input, output) = (input as f64, output as f64);
        (input * self.input_per_mtok + output * self.output_per_mtok) / 1e6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_sums_saturate() {
        let mut u = Usage {
            input_tokens: u64::MAX - 1,
            output_tokens: 5,
            cost_usd: 0.0,
        };
        u.add(Usage {
            input_tokens: 10,
            ..Usage::default()
        });
        assert_eq!(u.input_tokens, u64::MAX);
        assert_eq!(u.tokens(), u64::MAX);
        assert_eq!(sum_tokens([u64::MAX, 1]), u64::MAX);
        assert!(cost_error(-0.5).is_some());
        assert!(cost_error(0.0).is_none());
    }

    #[test]
    fn prices_are_per_million_tokens() {
        let p = Price {
            input_per_mtok: 3.0,
            output_per_mtok: 15.0,
        };
        assert!((p.cost(1000, 50) - 0.00375).abs() < 1e-12);
        assert!(p.cost(0, 0).abs() < f64::EPSILON);
        let input_only = Price {
            input_per_mtok: 2.0,
            ..Price::default()
        };
        assert!((input_only.cost(500_000, 1_000_000) - 1.0).abs() < 1e-12);
    }
}
