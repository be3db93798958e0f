//! A `validFor` window of trust material: when a key, a certificate authority or a timestamp
//! authority may vouch for a signature.

/// A `validFor` window in seconds since the epoch; an open end is unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub start: Option<i64>,
    pub end: Option<i64>,
}

impl Window {
    pub fn contains(&self, time: i64) -> bool {
        self.start.is_none_or(|start| start <= time) && self.end.is_none_or(|end| time <= end)
    }

    /// The window within a certificate's validity (`not_before` to `not_after`): a `validFor`
    /// never outlasts the certificate it is about.
    pub fn within(self, not_before: i64, not_after: i64) -> Window {
        Window {
            start: self.start.max(Some(not_before)),
            end: Some(self.end.map_or(not_after, |end| end.min(not_after))),
        }
    }
}
