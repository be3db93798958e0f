//! One rule ready to evaluate: compiled to regorus's bytecode VM (the RVM) where it compiles,
//! on regorus's interpreter where it does not. Which of the two runs a rule is a detail of
//! this module; the differential tests (`tests/engines.rs`, `tests/opa_differential.rs`,
//! `tests/gatekeeper.rs`) prove that the choice never changes a result.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::program::Program;
use regorus::rvm::vm::VmError;
use regorus::rvm::RegoVM;

use super::rego::{classify, timer};
use crate::results::EvalError;

/// Which engines a policy set may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineChoice {
    /// The VM for every rule that compiles, the interpreter for the others.
    #[default]
    Compiled,
    /// The interpreter for every rule (the differential tests' reference, and a way out).
    Interpreter,
}

/// The engine one rule runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EngineKind {
    Compiled,
    Interpreter,
}

impl EngineKind {
    /// The choice that puts a rule on this engine, if it compiles.
    pub fn choice(self) -> EngineChoice {
        match self {
            EngineKind::Compiled => EngineChoice::Compiled,
            EngineKind::Interpreter => EngineChoice::Interpreter,
        }
    }

    /// The value of the `engine` label of `portcullis_policies_loaded`.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Compiled => "compiled",
            EngineKind::Interpreter => "interpreter",
        }
    }
}

/// Instructions one VM execution may run. The configured time limit is the bound users set;
/// this one is a deterministic second stop, far above what a real policy runs (the default
/// library on a 10 KB Pod runs a few thousand instructions).
const MAX_INSTRUCTIONS: usize = 50_000_000;

/// A rule of a loaded engine, ready to evaluate on any input.
#[derive(Clone)]
pub struct Evaluator {
    rule: String,
    timeout: Duration,
    runner: Runner,
}

#[derive(Clone)]
enum Runner {
    Compiled {
        program: Arc<Program>,
        data: regorus::Value,
        /// Machines loaded with the program and data, idle between evaluations: one
        /// evaluation at a time takes one (at most as many as evaluate at once).
        idle: Arc<Mutex<Vec<RegoVM>>>,
    },
    /// Prepared by one evaluation, cloned for each next one.
    Interpreted(Box<regorus::Engine>),
}

impl Evaluator {
    /// `rule` (a path such as `data.p.deny`) of `engine`, whose modules and `data` are loaded
    /// and whose time limit is `timeout`. On the VM when `choice` allows it and the rule
    /// compiles; otherwise on the interpreter, with the compiler's reason returned beside it.
    pub fn new(
        engine: &regorus::Engine,
        data: &regorus::Value,
        rule: &str,
        timeout: Duration,
        choice: EngineChoice,
    ) -> (Evaluator, Option<String>) {
        let interpreted = || Runner::Interpreted(Box::new(prepare(engine.clone(), rule)));
        let (runner, why_interpreted) = match choice {
            EngineChoice::Compiled => match compile(engine, data, rule) {
                Ok(runner) => (runner, None),
                Err(reason) => (interpreted(), Some(reason)),
            },
            EngineChoice::Interpreter => (interpreted(), None),
        };
        let evaluator = Evaluator {
            rule: rule.to_string(),
            timeout,
            runner,
        };
        (evaluator, why_interpreted)
    }

    /// The same rule on other `data` (Gatekeeper's inventory), prepared again.
    pub fn with_data(&self, data: &regorus::Value) -> Result<Evaluator, String> {
        let runner = match &self.runner {
            Runner::Compiled { program, .. } => compiled(program.clone(), data.clone())?,
            Runner::Interpreted(prepared) => {
                let mut engine = prepared.as_ref().clone();
                engine.clear_data();
                engine.add_data(data.clone()).map_err(|e| e.to_string())?;
                Runner::Interpreted(Box::new(prepare(engine, &self.rule)))
            }
        };
        Ok(Evaluator {
            rule: self.rule.clone(),
            timeout: self.timeout,
            runner,
        })
    }

    pub fn kind(&self) -> EngineKind {
        match self.runner {
            Runner::Compiled { .. } => EngineKind::Compiled,
            Runner::Interpreted(_) => EngineKind::Interpreter,
        }
    }

    /// The rule's value for `input` (`Undefined` when the rule is).
    pub fn eval(&self, input: regorus::Value) -> Result<regorus::Value, EvalError> {
        self.eval_before(input, None)
    }

    /// [`Evaluator::eval`], stopped by the time limit or at `deadline`, whichever comes first
    /// (an evaluation on the caller's thread cannot be cut from outside).
    pub fn eval_before(&self, input: regorus::Value, deadline: Option<Instant>) -> Result<regorus::Value, EvalError> {
        let limit = deadline.map_or(self.timeout, |deadline| {
            self.timeout.min(deadline.saturating_duration_since(Instant::now()))
        });
        match &self.runner {
            Runner::Compiled { program, data, idle } => {
                let idle_vm = idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
                let mut vm = match idle_vm {
                    Some(vm) => vm,
                    None => machine(program, data).map_err(EvalError::Failed)?,
                };
                vm.set_input(input);
                vm.set_execution_timer_config(Some(timer(limit)));
                let value = vm.execute_entry_point_by_index(0).map_err(|e| match e {
                    VmError::TimeLimitExceeded { .. } => EvalError::Timeout(limit),
                    other => EvalError::Failed(other.to_string()),
                });
                // The machine starts its next execution afresh (registers, caches, timer).
                vm.set_input(regorus::Value::Undefined);
                idle.lock().unwrap_or_else(PoisonError::into_inner).push(vm);
                value
            }
            Runner::Interpreted(prepared) => {
                let mut engine = prepared.as_ref().clone();
                engine.set_input(input);
                engine.set_execution_timer_config(timer(limit));
                engine.eval_rule(self.rule.clone()).map_err(|e| classify(e, limit))
            }
        }
    }
}

/// The rule compiled to a VM program, or why it does not compile.
fn compile(engine: &regorus::Engine, data: &regorus::Value, rule: &str) -> Result<Runner, String> {
    let mut engine = engine.clone();
    let entry_point: regorus::Rc<str> = regorus::Rc::from(rule);
    let policy = engine
        .compile_with_entrypoint(&entry_point)
        .map_err(|e| e.to_string())?;
    let program = Compiler::compile_from_policy(&policy, &[rule]).map_err(|e| e.to_string())?;
    compiled(program, data.clone())
}

/// A VM runner of `program` on `data`, or why the VM does not take this data beside the
/// program's rules (a rule and a data value may not define the same path): such a program
/// would fail every evaluation, so the rule keeps the interpreter.
fn compiled(program: Arc<Program>, data: regorus::Value) -> Result<Runner, String> {
    let first = machine(&program, &data)?;
    Ok(Runner::Compiled {
        program,
        data,
        idle: Arc::new(Mutex::new(vec![first])),
    })
}

/// A VM loaded with `program` and `data` and configured as the interpreter is.
fn machine(program: &Arc<Program>, data: &regorus::Value) -> Result<RegoVM, String> {
    let mut vm = RegoVM::new();
    vm.load_program(program.clone());
    vm.set_data(data.clone()).map_err(|e| e.to_string())?;
    // As the interpreter is configured: a builtin error is undefined, as in OPA.
    vm.set_strict_builtin_errors(false);
    // The time limit is set per evaluation (`Evaluator::eval_before`).
    vm.set_max_instructions(MAX_INSTRUCTIONS);
    Ok(vm)
}

/// regorus analyses modules and data on the first evaluation after a change: do it once, on
/// an empty input, so every clone starts prepared. Errors on that input are not the rule's
/// fault and show again, where they matter, on a real one.
fn prepare(mut engine: regorus::Engine, rule: &str) -> regorus::Engine {
    engine.set_input(regorus::Value::new_object());
    let _ = engine.eval_rule(rule.to_string());
    engine
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rego::configured_engine;

    fn engine(rego: &str) -> regorus::Engine {
        let mut engine = configured_engine(Duration::from_millis(500));
        engine.add_policy("t.rego".into(), rego.into()).unwrap();
        engine
    }

    fn input(json: &str) -> regorus::Value {
        regorus::Value::from_json_str(json).unwrap()
    }

    #[test]
    fn a_rule_that_compiles_runs_on_the_vm_and_agrees_with_the_interpreter() {
        let engine = engine("package t\ndeny contains x if { some x in input.xs; x > 1 }\n");
        let data = regorus::Value::new_object();
        let (compiled, why) = Evaluator::new(
            &engine,
            &data,
            "data.t.deny",
            Duration::from_millis(500),
            EngineChoice::Compiled,
        );
        assert_eq!((compiled.kind(), why), (EngineKind::Compiled, None));
        let (interpreted, _) = Evaluator::new(
            &engine,
            &data,
            "data.t.deny",
            Duration::from_millis(500),
            EngineChoice::Interpreter,
        );
        assert_eq!(interpreted.kind(), EngineKind::Interpreter);
        for text in [r#"{"xs": [1, 2, 3]}"#, r#"{"xs": []}"#, "{}"] {
            assert_eq!(
                compiled.eval(input(text)).unwrap(),
                interpreted.eval(input(text)).unwrap(),
                "{text}"
            );
        }
    }

    #[test]
    fn a_rule_that_does_not_compile_keeps_the_interpreter_and_says_why() {
        let engine = engine("package t\nf := input.x\ndeny contains \"y\" if { f with input.x as 1 }\n");
        let (evaluator, why) = Evaluator::new(
            &engine,
            &regorus::Value::new_object(),
            "data.t.deny",
            Duration::from_millis(500),
            EngineChoice::Compiled,
        );
        assert_eq!(evaluator.kind(), EngineKind::Interpreter);
        assert!(why.unwrap().contains("with"));
        assert_eq!(
            evaluator
                .eval(input("{}"))
                .unwrap()
                .to_json_str()
                .unwrap()
                .replace(char::is_whitespace, ""),
            r#"["y"]"#
        );
    }

    #[test]
    fn the_time_limit_holds_on_the_vm() {
        let engine = engine(
            "package t\ndeny contains \"x\" if {\n  input.slow\n  some i in numbers.range(1, 400)\n  some j in numbers.range(1, 400)\n  some k in numbers.range(1, 400)\n  i + j + k < 0\n}\ndeny contains \"quick\" if input.quick\n",
        );
        let timeout = Duration::from_millis(20);
        let (evaluator, _) = Evaluator::new(
            &engine,
            &regorus::Value::new_object(),
            "data.t.deny",
            timeout,
            EngineChoice::Compiled,
        );
        assert_eq!(evaluator.kind(), EngineKind::Compiled);
        let eval = |text: &str| {
            let value = evaluator.eval(input(text))?;
            Ok(value.to_json_str().unwrap().replace(char::is_whitespace, ""))
        };
        let slow = r#"{"slow": true}"#;
        assert_eq!(eval(slow), Err(EvalError::Timeout(timeout)));
        // The machine is reused: after a timeout, the next evaluation starts afresh, its own
        // time limit again.
        assert_eq!(eval(r#"{"quick": true}"#), Ok(r#"["quick"]"#.to_string()));
        assert_eq!(eval(slow), Err(EvalError::Timeout(timeout)));
        assert_eq!(eval("{}"), Ok("[]".to_string()));
    }

    #[test]
    fn a_deadline_stops_an_evaluation_before_its_time_limit_on_both_engines() {
        let engine = engine(
            "package t\ndeny contains \"x\" if {\n  some i in numbers.range(1, 4000)\n  some j in numbers.range(1, 4000)\n  some k in numbers.range(1, 4000)\n  i + j + k < 0\n}\n",
        );
        let limit = Duration::from_secs(60);
        for choice in [EngineChoice::Compiled, EngineChoice::Interpreter] {
            let (evaluator, _) = Evaluator::new(&engine, &regorus::Value::new_object(), "data.t.deny", limit, choice);
            let deadline = Instant::now() + Duration::from_millis(50);
            match evaluator.eval_before(input("{}"), Some(deadline)) {
                // The limit it ran under: what was left of the time until the deadline.
                Err(EvalError::Timeout(left)) => assert!(left <= Duration::from_millis(50), "{left:?}"),
                other => panic!("{choice:?}: {other:?}"),
            }
            // Past the deadline, nothing is left to run on.
            let past = evaluator.eval_before(input("{}"), Some(Instant::now()));
            assert_eq!(past, Err(EvalError::Timeout(Duration::ZERO)), "{choice:?}");
        }
    }
}
