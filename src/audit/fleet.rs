//! The audited fleet between passes: the last pass's results kept up to date object by object
//! as changes arrive, in the pass's order, so that the reports of what did not change stay
//! identical (and are not written again).

use std::collections::HashMap;

use super::audited::Audited;

pub struct Fleet {
    /// In the order first decided; `None` where an object was deleted since.
    objects: Vec<Option<Audited>>,
    /// Where each uid is in `objects`.
    index: HashMap<String, usize>,
}

impl Fleet {
    /// A pass's results.
    pub fn new(audited: Vec<Audited>) -> Fleet {
        let index = audited
            .iter()
            .enumerate()
            .map(|(at, audited)| (audited.uid.clone(), at))
            .collect();
        Fleet {
            objects: audited.into_iter().map(Some).collect(),
            index,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Audited> {
        self.objects.iter().flatten()
    }

    /// Whether the object `uid` was decided as it is now (same [`super::audited::digest`]).
    pub fn holds(&self, uid: &str, digest: u64) -> bool {
        self.get(uid).is_some_and(|audited| audited.digest == digest)
    }

    /// An object decided again, or a new one: its result replaces the last. Its findings go to
    /// its controller when that is audited; a new object takes over the findings of the objects
    /// it controls (a ReplicaSet seen before its Deployment).
    pub fn update(&mut self, mut audited: Audited) {
        if audited
            .controller
            .as_deref()
            .is_some_and(|controller| self.get(controller).is_some())
        {
            audited.hand_over();
        }
        match self.index.get(&audited.uid) {
            Some(&at) => self.objects[at] = Some(audited),
            None => {
                for controlled in self.objects.iter_mut().flatten() {
                    if controlled.reported && controlled.controller.as_deref() == Some(audited.uid.as_str()) {
                        controlled.hand_over();
                    }
                }
                self.index.insert(audited.uid.clone(), self.objects.len());
                self.objects.push(Some(audited));
            }
        }
    }

    /// A deleted object; false when it was not audited. What it controlled stays handed over
    /// (the garbage collector deletes it next).
    pub fn remove(&mut self, uid: &str) -> bool {
        let Some(at) = self.index.remove(uid) else {
            return false;
        };
        self.objects[at] = None;
        // Deleted places compacted once they are half: the order of the rest kept.
        if self.index.len() * 2 < self.objects.len() {
            self.objects.retain(Option::is_some);
            for (at, audited) in self.objects.iter().flatten().enumerate() {
                self.index.insert(audited.uid.clone(), at);
            }
        }
        true
    }

    fn get(&self, uid: &str) -> Option<&Audited> {
        self.index.get(uid).and_then(|&at| self.objects[at].as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{FindingResult, ObjectResult};

    fn audited(uid: &str, controller: Option<&str>, digest: u64) -> Audited {
        let result = ObjectResult {
            origin: "cluster".into(),
            location: None,
            kind: "Pod".into(),
            namespace: "team-a".into(),
            name: uid.into(),
            allowed: false,
            risk_level: "high".into(),
            findings: vec![FindingResult::new("p", "deny", "no".into())],
            images: vec![],
            applied: vec![],
        };
        Audited {
            api_version: "v1".into(),
            uid: uid.into(),
            controller: controller.map(str::to_string),
            reported: true,
            result,
            digest,
        }
    }

    fn outline(fleet: &Fleet) -> Vec<(String, bool, usize)> {
        fleet
            .iter()
            .map(|a| (a.uid.clone(), a.reported, a.result.findings.len()))
            .collect()
    }

    #[test]
    fn changes_keep_the_order_and_hand_findings_to_controllers() {
        let mut fleet = Fleet::new(vec![audited("rs", None, 1), audited("a", Some("rs"), 1)]);
        assert!(fleet.holds("a", 1));
        assert!(!fleet.holds("a", 2));
        assert!(!fleet.holds("new", 1));

        // Changed in place; a new Pod of a known controller is handed over.
        fleet.update(audited("rs", None, 2));
        fleet.update(audited("b", Some("rs"), 1));
        // A controller seen after what it controls takes its findings.
        fleet.update(audited("early", Some("late"), 1));
        assert_eq!(outline(&fleet)[3], ("early".into(), true, 1));
        fleet.update(audited("late", None, 1));
        assert_eq!(
            outline(&fleet),
            [
                ("rs".into(), true, 1),
                ("a".into(), true, 1),
                ("b".into(), false, 0),
                ("early".into(), false, 0),
                ("late".into(), true, 1),
            ]
        );
        assert!(fleet.holds("rs", 2));

        assert!(fleet.remove("a"));
        assert!(!fleet.remove("a"));
        assert!(fleet.remove("b"));
        assert!(fleet.remove("early"));
        // Compacted: the rest in order, still found.
        assert_eq!(fleet.objects.len(), 2);
        assert!(fleet.holds("late", 1));
        fleet.update(audited("late", None, 3));
        assert_eq!(outline(&fleet), [("rs".into(), true, 1), ("late".into(), true, 1)]);
        assert!(fleet.holds("late", 3));
    }
}
