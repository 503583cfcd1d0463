//! A workspace's token policy: the longest lifetime a new token may have and
//! whether it must expire at all. Generation outside it is refused.

use super::{Expiry, ValidationError};

/// The lifetimes a policy may cap tokens at, in days: the finite choices of
/// the generate dialog, so every cap leaves at least one choice.
pub const LIFETIME_DAYS: [i64; 4] = [7, 30, 90, 365];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenPolicy {
    max_lifetime_days: Option<i64>,
    require_expiry: bool,
}

impl TokenPolicy {
    /// Reads the policy form: `max_lifetime` is `none` or one of
    /// `LIFETIME_DAYS`; `require_expiry` is a checkbox (absent, or `on`).
    pub fn parse(
        max_lifetime: &str,
        require_expiry: Option<&str>,
    ) -> Result<Self, ValidationError> {
        let max_lifetime_days = match max_lifetime.trim() {
            "" | "none" => None,
            raw => Some(
                raw.parse::<i64>()
                    .ok()
                    .filter(|d| LIFETIME_DAYS.contains(d))
                    .ok_or_else(|| {
                        ValidationError::new("Choose a maximum lifetime from the list.")
                    })?,
            ),
        };
        let require_expiry = match require_expiry {
            None | Some("") => false,
            Some("on" | "true" | "1") => true,
            Some(_) => {
                return Err(ValidationError::new(
                    "“Require an expiration date” is either ticked or not.",
                ));
            }
        };
        Ok(Self::new(max_lifetime_days, require_expiry))
    }

    /// From stored values; an unknown cap counts as none.
    pub fn from_stored(max_lifetime_days: Option<i64>, require_expiry: bool) -> Self {
        Self::new(
            max_lifetime_days.filter(|d| LIFETIME_DAYS.contains(d)),
            require_expiry,
        )
    }

    /// A maximum lifetime implies an expiration date.
    fn new(max_lifetime_days: Option<i64>, require_expiry: bool) -> Self {
        Self {
            max_lifetime_days,
            require_expiry: require_expiry || max_lifetime_days.is_some(),
        }
    }

    pub fn max_lifetime_days(self) -> Option<i64> {
        self.max_lifetime_days
    }

    pub fn requires_expiry(self) -> bool {
        self.require_expiry
    }

    /// True when the policy restricts anything.
    pub fn is_set(self) -> bool {
        self.require_expiry
    }

    /// Whether a new token may be generated with this expiry.
    pub fn allows(self, expiry: Expiry) -> bool {
        match expiry.days() {
            None => !self.require_expiry,
            Some(days) => self.max_lifetime_days.is_none_or(|max| days <= max),
        }
    }

    /// Whether an existing token (created at, expires at) keeps to it.
    pub fn admits(self, created_at: i64, expires_at: Option<i64>) -> bool {
        match expires_at {
            None => !self.require_expiry,
            Some(at) => self
                .max_lifetime_days
                .is_none_or(|max| at - created_at <= max * 86_400),
        }
    }

    /// The expiry choices a new token may have.
    pub fn allowed_expiries(self) -> Vec<Expiry> {
        Expiry::ALL
            .into_iter()
            .filter(|e| self.allows(*e))
            .collect()
    }

    /// The generate dialog's default: the usual one when allowed, else the
    /// longest allowed.
    pub fn default_expiry(self) -> Expiry {
        if self.allows(Expiry::default()) {
            Expiry::default()
        } else {
            self.allowed_expiries()
                .into_iter()
                .rev()
                .find(|e| e.days().is_some())
                .unwrap_or(Expiry::Days7)
        }
    }

    /// Why `expiry` is refused, for the person who chose it.
    pub fn refusal(self) -> String {
        match self.max_lifetime_days {
            Some(days) => format!(
                "Your workspace's token policy allows tokens that expire within {} at most. Choose a shorter expiry.",
                lifetime_label(days)
            ),
            None => "Your workspace's token policy requires an expiration date. Choose one from the list.".to_owned(),
        }
    }

    /// How the policy reads in the audit log and on the page.
    pub fn summary(self) -> String {
        match (self.max_lifetime_days, self.require_expiry) {
            (Some(days), _) => format!("maximum lifetime {}", lifetime_label(days)),
            (None, true) => "expiration date required, no maximum lifetime".to_owned(),
            (None, false) => "no restriction".to_owned(),
        }
    }
}

/// `7 days`, `1 year`.
pub fn lifetime_label(days: i64) -> String {
    match days {
        365 => "1 year".to_owned(),
        d => format!("{d} days"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_values_parse_and_anything_else_is_refused() {
        assert_eq!(TokenPolicy::parse("none", None), Ok(TokenPolicy::default()));
        assert_eq!(TokenPolicy::parse("", None), Ok(TokenPolicy::default()));
        let capped = TokenPolicy::parse("30", None).unwrap();
        assert_eq!(capped.max_lifetime_days(), Some(30));
        assert!(
            capped.requires_expiry(),
            "a maximum lifetime implies an expiry"
        );
        let required = TokenPolicy::parse("none", Some("on")).unwrap();
        assert_eq!(
            (required.max_lifetime_days(), required.requires_expiry()),
            (None, true)
        );
        for bad in [
            "0",
            "8",
            "-7",
            "365.0",
            "never",
            "1e3",
            "99999999999999999999",
        ] {
            assert!(TokenPolicy::parse(bad, None).is_err(), "{bad}");
        }
        assert!(TokenPolicy::parse("30", Some("maybe")).is_err());
    }

    #[test]
    fn the_allowed_expiries_follow_the_policy() {
        let choices = |p: TokenPolicy| -> Vec<&str> {
            p.allowed_expiries()
                .into_iter()
                .map(Expiry::as_str)
                .collect()
        };
        assert_eq!(
            choices(TokenPolicy::default()),
            ["7", "30", "90", "365", "never"]
        );
        assert_eq!(
            choices(TokenPolicy::parse("none", Some("on")).unwrap()),
            ["7", "30", "90", "365"]
        );
        assert_eq!(
            choices(TokenPolicy::parse("30", None).unwrap()),
            ["7", "30"]
        );
        assert_eq!(choices(TokenPolicy::parse("7", Some("on")).unwrap()), ["7"]);
        assert_eq!(
            TokenPolicy::parse("30", None).unwrap().default_expiry(),
            Expiry::Days30
        );
        assert_eq!(
            TokenPolicy::parse("365", None).unwrap().default_expiry(),
            Expiry::Days90
        );
    }

    #[test]
    fn existing_tokens_are_judged_by_the_lifetime_they_were_given() {
        let day = 86_400;
        let policy = TokenPolicy::parse("30", None).unwrap();
        assert!(policy.admits(1_000, Some(1_000 + 30 * day)));
        assert!(!policy.admits(1_000, Some(1_000 + 30 * day + 1)));
        assert!(!policy.admits(1_000, None));
        assert!(TokenPolicy::default().admits(1_000, None));
        assert!(
            !TokenPolicy::parse("none", Some("on"))
                .unwrap()
                .admits(1_000, None)
        );
    }
}
