//! At which risk levels a native policy applies, as its own data says (the convention of the
//! default library, policies/README.md): `risk_levels`, the levels it applies at (absent: all),
//! and `warn_levels`, the levels where its denials are only warnings. Read from the data the
//! policy is evaluated with (data.yaml and the chart's parameters merged), so what `gates`
//! lists is what the policy does.

use serde_json::Value;

use crate::risk::RiskLevel;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Levels {
    /// The levels it applies at; `None`: every level.
    pub applies: Option<Vec<RiskLevel>>,
    /// The levels where it only warns.
    pub warns: Vec<RiskLevel>,
}

impl Levels {
    /// The levels of the policy `id` (a package path) in the library's `data`. A list that is
    /// not one of level names is the policy's own business (it reports it when evaluated):
    /// the policy is then taken to apply everywhere, in full.
    pub fn of(data: &Value, id: &str) -> Levels {
        let policy_data = id.split('.').try_fold(data, |value, key| value.get(key));
        let levels = |key: &str| -> Option<Vec<RiskLevel>> {
            let items = policy_data?.get(key)?.as_array()?;
            items
                .iter()
                .map(|item| item.as_str().and_then(RiskLevel::parse))
                .collect()
        };
        Levels {
            applies: levels("risk_levels"),
            warns: levels("warn_levels").unwrap_or_default(),
        }
    }

    pub fn applies_at(&self, level: RiskLevel) -> bool {
        self.applies.as_ref().is_none_or(|levels| levels.contains(&level))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_policys_data_names_its_levels() {
        let data = json!({"images": {"sbom": {"risk_levels": ["medium", "high"]}, "digest_pinning": {"warn_levels": ["low"]},
            "odd": {"risk_levels": ["extreme"]}}});
        let sbom = Levels::of(&data, "images.sbom");
        assert!(!sbom.applies_at(RiskLevel::Low) && sbom.applies_at(RiskLevel::High));
        let pinning = Levels::of(&data, "images.digest_pinning");
        assert!(pinning.applies_at(RiskLevel::Low));
        assert_eq!(pinning.warns, [RiskLevel::Low]);
        assert_eq!(
            Levels::of(&data, "images.odd"),
            Levels::default(),
            "not level names: everywhere"
        );
        assert_eq!(Levels::of(&data, "pods.host_path"), Levels::default());
    }
}
