//! The policy set reviews use, rebuilt when either of its two sources changes: the policy
//! library (hot reload) or the cluster inventory (Gatekeeper's `data.inventory`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use serde_json::Value;

use super::engine::PolicySet;
use super::gatekeeper::{Inventory, InventoryError};

pub struct LivePolicies {
    installed: ArcSwap<PolicySet>,
    sources: Mutex<Sources>,
    /// True while an inventory is expected but none has been installed yet (not ready). An
    /// atomic, not derived from `sources`: readiness probes must not wait on the lock a rebuild
    /// holds.
    awaiting_inventory: AtomicBool,
    /// How many libraries replaced the first.
    library_version: AtomicU64,
}

struct Sources {
    library: Arc<PolicySet>,
    inventory: Option<Inventory>,
}

impl LivePolicies {
    pub fn new(library: PolicySet) -> LivePolicies {
        let library = Arc::new(library);
        LivePolicies {
            installed: ArcSwap::new(library.clone()),
            sources: Mutex::new(Sources {
                library,
                inventory: None,
            }),
            awaiting_inventory: AtomicBool::new(false),
            library_version: AtomicU64::new(0),
        }
    }

    /// The set to evaluate; reviews in flight keep the one they loaded.
    pub fn current(&self) -> Arc<PolicySet> {
        self.installed.load_full()
    }

    /// Marks the set as not ready until the first [`LivePolicies::replace_inventory`].
    pub fn expect_inventory(&self) {
        self.awaiting_inventory.store(true, Ordering::Release);
    }

    pub fn ready(&self) -> bool {
        !self.awaiting_inventory.load(Ordering::Acquire)
    }

    /// A newly loaded library, with the current inventory if there is one. CPU-bound.
    pub fn replace_library(&self, library: PolicySet) -> Result<(), InventoryError> {
        let mut sources = self.lock();
        let library = Arc::new(library);
        let installed = match &sources.inventory {
            Some(inventory) => Arc::new(library.with_inventory(inventory)?),
            None => library.clone(),
        };
        sources.library = library;
        self.installed.store(installed);
        self.library_version.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Changes with each library installed (not with the inventory).
    pub fn library_version(&self) -> u64 {
        self.library_version.load(Ordering::Acquire)
    }

    /// A new inventory document (laid out as `gatekeeper::review::inventory` builds it), for
    /// the current library. CPU-bound. On error the previous set stays installed.
    pub fn replace_inventory(&self, document: Value) -> Result<(), InventoryError> {
        let inventory = Inventory::new(&document)?;
        drop(document); // only the converted copy is kept
        let mut sources = self.lock();
        let installed = sources.library.with_inventory(&inventory)?;
        sources.inventory = Some(inventory);
        self.installed.store(Arc::new(installed));
        self.awaiting_inventory.store(false, Ordering::Release);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sources> {
        // A panic while holding the lock left the sources consistent (they are replaced whole).
        self.sources.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::bundle::Bundle;
    use crate::policy::gatekeeper::Document;
    use serde_json::json;
    use std::time::Duration;

    const TEMPLATE: &str = r#"
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: k8sknownname}
spec:
  crd: {spec: {names: {kind: K8sKnownName}}}
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package k8sknownname
      violation[{"msg": sprintf("%v: %v", [input.parameters.label, name])}] {
        name := input.review.object.metadata.name
        data.inventory.cluster["v1"].Namespace[name]
      }
"#;

    fn library(label: &str) -> PolicySet {
        let constraint =
            format!("apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sKnownName\nmetadata: {{name: c}}\nspec: {{parameters: {{label: {label}}}}}\n");
        let bundle = Bundle {
            modules: vec![],
            tests: vec![],
            data: json!({}),
            gatekeeper: [TEMPLATE, constraint.as_str()]
                .iter()
                .enumerate()
                .map(|(i, text)| Document {
                    origin: format!("d{i}.yaml"),
                    value: yaml_serde::from_str(text).unwrap(),
                })
                .collect(),
        };
        PolicySet::build(&bundle, json!({}), Duration::from_secs(1)).unwrap()
    }

    fn denials(live: &LivePolicies) -> Vec<String> {
        let input = json!({"request": {"kind": {"group": "", "version": "v1", "kind": "Pod"}, "namespace": "a",
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "taken", "namespace": "a"}}}});
        live.current()
            .evaluate(&input)
            .into_iter()
            .flat_map(|r| r.deny)
            .map(|v| v.message)
            .collect()
    }

    fn inventory(names: &[&str]) -> Value {
        let namespaces: Vec<Value> = names
            .iter()
            .map(|n| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}))
            .collect();
        crate::policy::gatekeeper::review::inventory(&namespaces)
    }

    #[test]
    fn library_and_inventory_are_combined_whichever_changes() {
        let live = LivePolicies::new(library("one"));
        assert!(live.ready());
        live.expect_inventory();
        assert!(!live.ready(), "an expected inventory not yet synced");
        assert!(denials(&live).is_empty());

        live.replace_inventory(inventory(&["taken"])).unwrap();
        assert!(live.ready());
        assert_eq!(denials(&live), ["one: taken"]);
        // A library reload keeps the inventory.
        live.replace_library(library("two")).unwrap();
        assert_eq!(denials(&live), ["two: taken"]);
        // An inventory change keeps the library.
        live.replace_inventory(inventory(&["other"])).unwrap();
        assert!(denials(&live).is_empty());
        live.replace_inventory(inventory(&["other", "taken"])).unwrap();
        assert_eq!(denials(&live), ["two: taken"]);
    }
}
