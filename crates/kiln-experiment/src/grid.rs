//! The grid: the questions an experiment asks, the arms each question compares, and what makes
//! two arms the same (so an arm several questions share, like the baseline, runs once).

use kiln_data::FileOrder;
use kiln_quickstart::Recipe;
use kiln_train::{ModelShape, ScheduleKind};
use serde::{Deserialize, Serialize};

/// A question of the paper (or of small-budget practice) that a group of arms answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Question {
    /// FIM rate 0 / 0.5 / 1.0 (PSM), SPM and a PSM+SPM mix at 0.5.
    Fim,
    /// Dependency order vs random order within the repository vs one document per file.
    Order,
    /// Four model widths at equal wall-clock.
    Size,
    /// The paper's step decay vs warmup-stable-decay vs linear decay to zero.
    Schedule,
    /// Three peak learning rates.
    Lr,
}

impl Question {
    /// Every question, in report order.
    pub const ALL: [Question; 5] = [Question::Fim, Question::Order, Question::Size, Question::Schedule, Question::Lr];

    /// The name on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            Question::Fim => "fim",
            Question::Order => "order",
            Question::Size => "size",
            Question::Schedule => "schedule",
            Question::Lr => "lr",
        }
    }

    /// A heading for the report.
    pub fn title(self) -> &'static str {
        match self {
            Question::Fim => "Fill-in-the-middle: rate and layout",
            Question::Order => "Repository-level pre-training: the order of a repository's files",
            Question::Size => "Model size at equal training time",
            Question::Schedule => "Learning-rate schedule",
            Question::Lr => "Peak learning rate",
        }
    }

    /// The arms that answer the question, the baseline among them.
    pub fn arms(self, base: &Arm) -> Vec<Arm> {
        let data = |name: &str, fim_rate: f64, spm_rate: f64, order: FileOrder| Arm {
            name: name.into(),
            data: DataVariant { fim_rate, spm_rate, order },
            recipe: base.recipe,
        };
        let recipe = |name: String, recipe: Recipe| Arm { name, data: base.data, recipe };
        let mut arms = vec![base.clone()];
        match self {
            Question::Fim => arms.extend([
                data("fim-0", 0.0, 0.0, base.data.order),
                data("psm-1.0", 1.0, 0.0, base.data.order),
                data("spm-0.5", 0.5, 1.0, base.data.order),
                data("psm+spm-0.5", 0.5, 0.5, base.data.order),
            ]),
            Question::Order => arms.extend([
                data("random-order", base.data.fim_rate, base.data.spm_rate, FileOrder::Random),
                data("file-level", base.data.fim_rate, base.data.spm_rate, FileOrder::File),
            ]),
            Question::Size => {
                for width in [96, 192, 256] {
                    let shape = ModelShape {
                        hidden_size: width,
                        // The tiny preset's SwiGLU ratio (352 / 128) and 32-wide heads.
                        intermediate_size: (width * 11 / 4).div_ceil(16) * 16,
                        num_attention_heads: width / 32,
                        num_key_value_heads: width / 32,
                        ..base.recipe.shape
                    };
                    if shape != base.recipe.shape {
                        arms.push(recipe(format!("width-{width}"), Recipe { shape, ..base.recipe }));
                    }
                }
            }
            Question::Schedule => {
                for kind in [ScheduleKind::Step, ScheduleKind::Wsd, ScheduleKind::Linear] {
                    if kind != base.recipe.schedule {
                        let name =
                            if kind == ScheduleKind::Step { "schedule-deepseek".to_string() } else { format!("schedule-{}", kind.name()) };
                        arms.push(recipe(name, Recipe { schedule: kind, ..base.recipe }));
                    }
                }
            }
            Question::Lr => {
                for f in [0.4, 2.5] {
                    let lr = base.recipe.lr * f;
                    arms.push(recipe(format!("lr-{lr:.0e}"), Recipe { lr, ..base.recipe }));
                }
            }
        }
        arms
    }
}

impl std::str::FromStr for Question {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Question::ALL
            .into_iter()
            .find(|q| q.name() == s)
            .ok_or_else(|| format!("unknown question {s:?}; expected one of {}", Question::ALL.map(|q| q.name()).join(", ")))
    }
}

/// What the training data of an arm is: its FIM rates and file order (each variant is packed
/// once and shared by the arms that use it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataVariant {
    /// Share of documents FIM-transformed.
    pub fim_rate: f64,
    /// Share of the FIM documents in SPM layout.
    pub spm_rate: f64,
    /// How a repository's files become documents.
    pub order: FileOrder,
}

impl Default for DataVariant {
    /// Quickstart's data: PSM at 0.5, dependency order.
    fn default() -> Self {
        DataVariant { fim_rate: 0.5, spm_rate: 0.0, order: FileOrder::Dependency }
    }
}

impl DataVariant {
    /// A folder name: `fim0.5-spm0-dependency`.
    pub fn slug(&self) -> String {
        format!("fim{}-spm{}-{}", self.fim_rate, self.spm_rate, self.order.name())
    }
}

/// One arm: a named data variant and recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arm {
    /// Its name in tables and folders (`baseline`, `psm-1.0`, `width-192`, ...).
    pub name: String,
    /// Its data.
    pub data: DataVariant,
    /// Its training recipe.
    pub recipe: Recipe,
}

impl Arm {
    /// Quickstart's run: its data and recipe.
    pub fn baseline() -> Self {
        Arm { name: "baseline".into(), data: DataVariant::default(), recipe: Recipe::default() }
    }

    /// What decides the arm's results besides the budget and seed (its settings as JSON), to
    /// tell a finished arm from a changed one.
    pub fn key(&self) -> String {
        serde_json::to_string(&(&self.data, &self.recipe)).expect("arms serialise")
    }

    /// Says what is wrong with the arm's settings, naming the arm and the field.
    pub fn validate(&self) -> Result<(), String> {
        let bad = |m: String| Err(format!("arm {}: {m}", self.name));
        if !(0.0..=1.0).contains(&self.data.fim_rate) || !(0.0..=1.0).contains(&self.data.spm_rate) {
            return bad(format!("fim_rate {} and spm_rate {} must be between 0 and 1", self.data.fim_rate, self.data.spm_rate));
        }
        if let Err(e) = self.recipe.validate() {
            return bad(e);
        }
        Ok(())
    }
}

/// The arms of `questions`, each once (in question order, the baseline first), and for each
/// question the names of its arms.
pub fn arms_of(questions: &[Question], base: &Arm) -> (Vec<Arm>, Vec<(Question, Vec<String>)>) {
    let mut all: Vec<Arm> = Vec::new();
    let mut by_question = Vec::new();
    for &q in questions {
        let arms = q.arms(base);
        by_question.push((q, arms.iter().map(|a| a.name.clone()).collect()));
        for a in arms {
            if !all.iter().any(|b| b.name == a.name) {
                all.push(a);
            }
        }
    }
    (all, by_question)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_question_has_the_baseline_and_distinct_valid_arms() {
        let base = Arm::baseline();
        let (all, by_q) = arms_of(&Question::ALL, &base);
        assert_eq!(all.iter().filter(|a| a.name == "baseline").count(), 1);
        for (q, names) in &by_q {
            assert_eq!(names[0], "baseline", "{q:?}");
            assert!(names.len() >= 3, "{q:?}: {names:?}");
        }
        for a in &all {
            a.validate().unwrap();
            assert_eq!(all.iter().filter(|b| b.key() == a.key()).count(), 1, "{} duplicates another arm", a.name);
        }
        // The arms: FIM 0 / 0.5 / 1.0 PSM, SPM and the mix; three orders; four sizes;
        // three schedules; three learning rates.
        let count = |q: Question| by_q.iter().find(|(x, _)| *x == q).unwrap().1.len();
        assert_eq!((count(Question::Fim), count(Question::Order), count(Question::Size)), (5, 3, 4));
        assert_eq!((count(Question::Schedule), count(Question::Lr)), (3, 3));
        assert_eq!("order".parse::<Question>().unwrap(), Question::Order);
        assert!("vocab".parse::<Question>().unwrap_err().contains("fim, order, size, schedule, lr"));
        let bad = Arm { data: DataVariant { fim_rate: 1.5, ..DataVariant::default() }, ..Arm::baseline() };
        assert!(bad.validate().unwrap_err().starts_with("arm baseline: fim_rate 1.5"));
    }
}
