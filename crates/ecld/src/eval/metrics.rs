//! Quality metrics: hallucination rate on factual questions, multiple-choice accuracy by
//! log-likelihood, and perplexity on held-out prose. Timing is the caller's business (this
//! crate never reads a clock).
//!
//! **Hallucination rule.** The model answers each question greedily, through its chat
//! template, with the instruction [`FACT_INSTRUCTION`], for at most `max_new_tokens`. The reply
//! is then classified, in this order:
//! 1. *correct* if its normalised text ([`normalise`]) contains a normalised gold answer as
//!    whole words;
//! 2. *abstained* if it matches an "I don't know"-style pattern ([`is_abstention`]) **or** the
//!    model's confidence, the geometric mean of the probabilities of the reply's tokens,
//!    is below the threshold (default [`CONFIDENCE_THRESHOLD`]);
//! 3. otherwise *hallucinated*: a confident wrong answer.
//!
//! The rate is hallucinated / asked.
//!
//! **Multiple choice.** Prompt `Question: …\nAnswer:`, each option appended as ` option`;
//! an option's score is the mean log-probability of its tokens given the prompt
//! (length-normalised, so longer options are not penalised for their length); the highest
//! score wins, ties go to the lower index. Accuracy = correct / items.
//!
//! **Perplexity** = exp(Σ token NLL / Σ predicted tokens) over all passages, each passage
//! scored on its own from its first token (the first token is context only).

use std::sync::LazyLock;

use candle_core::Tensor;
use regex::Regex;
use serde::{Deserialize, Serialize};

use edgewise_llm::error::{Error, Result};
use edgewise_llm::generate::Engine;
use edgewise_llm::model::Model;
use edgewise_llm::tokenizer::{ChatMessage, Tokenizer};

/// The instruction placed before every factual question.
pub const FACT_INSTRUCTION: &str =
    "Answer with a few words only. If you do not know the answer, say \"I don't know\".\n";
/// Default confidence threshold below which a wrong reply counts as an abstention.
pub const CONFIDENCE_THRESHOLD: f32 = 0.5;

/// Lower case, every run of non-alphanumeric characters becomes one space, trimmed.
#[must_use]
pub fn normalise(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = true;
    for c in s.chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
            space = false;
        } else if !space {
            out.push(' ');
            space = true;
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

/// Whether `reply` contains one of `answers` as whole words (both normalised).
#[must_use]
pub fn contains_answer(reply: &str, answers: &[String]) -> bool {
    let r = format!(" {} ", normalise(reply));
    answers.iter().any(|a| {
        let a = normalise(a);
        !a.is_empty() && r.contains(&format!(" {a} "))
    })
}

static ABSTAIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\b(i (do not|don t|dont) know|i am not sure|i m not sure|not sure|i cannot|i can t|i can not|i am unable|i m unable|unable to (answer|determine|provide)|no (information|idea)|i m sorry|i am sorry|not known|unknown)\b",
    )
    .expect("the abstention pattern is valid")
});

/// Whether `reply` is an "I don't know"-style abstention.
#[must_use]
pub fn is_abstention(reply: &str) -> bool {
    ABSTAIN.is_match(&normalise(reply))
}

/// What a reply to a factual question counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FactOutcome {
    /// Contains a gold answer.
    Correct,
    /// Says it does not know, or is not confident.
    Abstained,
    /// A confident wrong answer.
    Hallucinated,
}

/// Applies the hallucination rule (module docs) to one reply.
#[must_use]
pub fn classify(reply: &str, answers: &[String], confidence: f32, threshold: f32) -> FactOutcome {
    if contains_answer(reply, answers) {
        FactOutcome::Correct
    } else if is_abstention(reply) || reply.trim().is_empty() || confidence < threshold {
        FactOutcome::Abstained
    } else {
        FactOutcome::Hallucinated
    }
}

/// Counts of [`FactOutcome`]s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactTally {
    /// Correct replies.
    pub correct: usize,
    /// Abstentions.
    pub abstained: usize,
    /// Confident wrong replies.
    pub hallucinated: usize,
}

impl FactTally {
    /// Adds one outcome.
    pub fn add(&mut self, o: FactOutcome) {
        match o {
            FactOutcome::Correct => self.correct += 1,
            FactOutcome::Abstained => self.abstained += 1,
            FactOutcome::Hallucinated => self.hallucinated += 1,
        }
    }

    /// Questions asked.
    #[must_use]
    pub fn asked(&self) -> usize {
        self.correct + self.abstained + self.hallucinated
    }

    /// Hallucinated / asked (0 when nothing was asked).
    #[must_use]
    pub fn hallucination_rate(&self) -> f64 {
        ratio(self.hallucinated, self.asked())
    }

    /// Correct / asked.
    #[must_use]
    pub fn accuracy(&self) -> f64 {
        ratio(self.correct, self.asked())
    }
}

#[allow(clippy::cast_precision_loss)]
fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Log-softmax of one row of logits, in f64.
#[must_use]
pub fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let max: f64 = logits
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max)
        .into();
    let lse: f64 = logits
        .iter()
        .map(|&x| (f64::from(x) - max).exp())
        .sum::<f64>()
        .ln()
        + max;
    logits.iter().map(|&x| f64::from(x) - lse).collect()
}

fn argmax(row: &[f64]) -> u32 {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if x > row[best] {
            best = i;
        }
    }
    u32::try_from(best).unwrap_or(u32::MAX)
}

/// A greedy reply with its confidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FactAnswer {
    /// The decoded reply.
    pub reply: String,
    /// Geometric mean probability of the reply's tokens (1 for an empty reply).
    pub confidence: f32,
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Tokens generated (without the stop token).
    pub generated_tokens: usize,
}

/// The chat prompt for a factual question.
#[must_use]
pub fn fact_prompt(tokenizer: &Tokenizer, question: &str) -> String {
    tokenizer.apply_chat_template(
        &[ChatMessage::user(&format!("{FACT_INSTRUCTION}{question}"))],
        true,
    )
}

/// Answers `question` greedily (at most `max_new_tokens`), recording token probabilities.
///
/// # Errors
/// Model and tokenizer errors.
pub fn answer_fact(engine: &Engine, question: &str, max_new_tokens: usize) -> Result<FactAnswer> {
    let prompt = engine
        .tokenizer
        .encode(&fact_prompt(&engine.tokenizer, question), true)?;
    let stops = engine.tokenizer.stop_tokens();
    let mut cache = engine.model.new_cache();
    let mut logits = engine.model.forward(&prompt, &mut cache)?;
    let mut out = Vec::new();
    let mut logp_sum = 0.0f64;
    while out.len() < max_new_tokens {
        let lp = log_softmax(&logits.to_vec1::<f32>()?);
        let next = argmax(&lp);
        if stops.contains(&next) {
            break;
        }
        logp_sum += lp[next as usize];
        out.push(next);
        if out.len() < max_new_tokens {
            logits = engine.model.forward(&[next], &mut cache)?;
        }
    }
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    let confidence = if out.is_empty() {
        1.0
    } else {
        (logp_sum / out.len() as f64).exp() as f32
    };
    Ok(FactAnswer {
        reply: engine.tokenizer.decode(&out, true)?,
        confidence,
        prompt_tokens: prompt.len(),
        generated_tokens: out.len(),
    })
}

/// The log-likelihood of one option.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OptionScore {
    /// Σ log p(option token | prompt, earlier option tokens).
    pub sum_logprob: f64,
    /// Option tokens scored.
    pub tokens: usize,
}

impl OptionScore {
    /// Mean log-probability per token (the score used to pick an option).
    #[must_use]
    pub fn mean(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let n = self.tokens.max(1) as f64;
        self.sum_logprob / n
    }
}

/// The index of the best option by [`OptionScore::mean`]; ties go to the lowest index.
///
/// # Errors
/// [`Error::InvalidArgument`] for no options.
pub fn pick_option(scores: &[OptionScore]) -> Result<usize> {
    if scores.is_empty() {
        return Err(Error::InvalidArgument(
            "no options to choose from, expected at least one".into(),
        ));
    }
    let mut best = 0;
    for (i, s) in scores.iter().enumerate() {
        if s.mean() > scores[best].mean() {
            best = i;
        }
    }
    Ok(best)
}

/// The multiple-choice prompt.
#[must_use]
pub fn mc_prompt(question: &str) -> String {
    format!("Question: {question}\nAnswer:")
}

/// Scores every option of a multiple-choice question (module docs); the prompt is run once
/// and its KV cache shared by the options.
///
/// # Errors
/// Model and tokenizer errors; [`Error::InvalidArgument`] for an option that encodes to no
/// tokens.
pub fn score_options(
    model: &Model,
    tokenizer: &Tokenizer,
    question: &str,
    options: &[String],
) -> Result<Vec<OptionScore>> {
    let prompt = tokenizer.encode(&mc_prompt(question), false)?;
    let mut cache = model.new_cache();
    let last = log_softmax(&model.forward(&prompt, &mut cache)?.to_vec1::<f32>()?);
    let mut scores = Vec::with_capacity(options.len());
    for opt in options {
        let toks = tokenizer.encode(&format!(" {opt}"), false)?;
        let Some((&first, rest)) = toks.split_first() else {
            return Err(Error::InvalidArgument(format!(
                "option {opt:?} encodes to no tokens"
            )));
        };
        let mut sum = last[first as usize];
        if !rest.is_empty() {
            let mut c = cache.clone();
            // Logits after each option token except the last predict the next one.
            let all = model.forward_all(&toks[..toks.len() - 1], &mut c)?;
            sum += sum_target_logprobs(&all, rest)?;
        }
        scores.push(OptionScore {
            sum_logprob: sum,
            tokens: toks.len(),
        });
    }
    Ok(scores)
}

/// Σ over rows `i` of log-softmax(`logits[i]`)[`targets[i]`].
fn sum_target_logprobs(logits: &Tensor, targets: &[u32]) -> Result<f64> {
    let rows = logits.to_vec2::<f32>()?;
    if rows.len() != targets.len() {
        return Err(Error::InvalidArgument(format!(
            "{} logit rows for {} targets",
            rows.len(),
            targets.len()
        )));
    }
    Ok(rows
        .iter()
        .zip(targets)
        .map(|(r, &t)| log_softmax(r)[t as usize])
        .sum())
}

/// Negative log-likelihood of `tokens[1..]` given the earlier tokens: (Σ NLL, tokens
/// predicted). Passages longer than `max_tokens` are cut.
///
/// # Errors
/// Model errors.
pub fn text_nll(model: &Model, tokens: &[u32], max_tokens: usize) -> Result<(f64, usize)> {
    let toks = &tokens[..tokens.len().min(max_tokens)];
    if toks.len() < 2 {
        return Ok((0.0, 0));
    }
    let mut cache = model.new_cache();
    let all = model.forward_all(&toks[..toks.len() - 1], &mut cache)?;
    let ll = sum_target_logprobs(&all, &toks[1..])?;
    Ok((-ll, toks.len() - 1))
}

/// Perplexity from a summed NLL and a token count (∞ for no tokens).
#[must_use]
pub fn perplexity(nll_sum: f64, tokens: usize) -> f64 {
    if tokens == 0 {
        f64::INFINITY
    } else {
        #[allow(clippy::cast_precision_loss)]
        (nll_sum / tokens as f64).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use edgewise_llm::model::tiny_config;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn normalisation_and_whole_word_matching() {
        assert_eq!(normalise("  Ciudad de México!  "), "ciudad de méxico");
        assert!(contains_answer("The capital is Paris.", &s(&["paris"])));
        assert!(contains_answer("It's 6.", &s(&["6"])));
        assert!(!contains_answer("It is 16.", &s(&["6"])));
        assert!(!contains_answer("Iron is Fe2", &s(&["Fe"])));
        assert!(contains_answer(
            "New Delhi, India",
            &s(&["Mumbai", "New Delhi"])
        ));
        assert!(!contains_answer("anything", &s(&[" "])));
    }

    #[test]
    fn hallucination_rule_on_crafted_replies() {
        let gold = s(&["Canberra"]);
        let t = CONFIDENCE_THRESHOLD;
        assert_eq!(classify("Canberra.", &gold, 0.1, t), FactOutcome::Correct);
        assert_eq!(
            classify("I don't know.", &gold, 0.99, t),
            FactOutcome::Abstained
        );
        assert_eq!(
            classify("I'm not sure, sorry", &gold, 0.99, t),
            FactOutcome::Abstained
        );
        assert_eq!(classify("Sydney", &gold, 0.3, t), FactOutcome::Abstained);
        assert_eq!(classify("Sydney", &gold, 0.9, t), FactOutcome::Hallucinated);
        assert_eq!(classify("", &gold, 1.0, t), FactOutcome::Abstained);
        let mut tally = FactTally::default();
        for o in [
            FactOutcome::Correct,
            FactOutcome::Hallucinated,
            FactOutcome::Abstained,
            FactOutcome::Hallucinated,
        ] {
            tally.add(o);
        }
        assert_eq!(tally.asked(), 4);
        assert!((tally.hallucination_rate() - 0.5).abs() < 1e-12);
        assert!((tally.accuracy() - 0.25).abs() < 1e-12);
        assert!(FactTally::default().hallucination_rate().abs() < f64::EPSILON);
    }

    #[test]
    fn mc_scoring_picks_the_higher_likelihood_option() {
        let long_likely = OptionScore {
            sum_logprob: -3.0,
            tokens: 3,
        };
        let short = OptionScore {
            sum_logprob: -1.5,
            tokens: 1,
        };
        let unlikely = OptionScore {
            sum_logprob: -9.0,
            tokens: 3,
        };
        // -1.0 per token beats -1.5 (a summed score would have picked `short`).
        assert_eq!(pick_option(&[short, long_likely, unlikely]).unwrap(), 1);
        assert_eq!(pick_option(&[unlikely, short]).unwrap(), 1);
        // Ties go to the first.
        assert_eq!(pick_option(&[short, short]).unwrap(), 0);
        assert!(pick_option(&[]).is_err());
    }

    #[test]
    fn log_softmax_normalises() {
        let lp = log_softmax(&[1.0, 2.0, 3.0]);
        let total: f64 = lp.iter().map(|x| x.exp()).sum();
        assert!((total - 1.0).abs() < 1e-12);
        assert!(lp[2] > lp[1] && lp[1] > lp[0]);
    }

    #[test]
    fn option_scores_match_a_direct_forward() {
        // The cached per-option scoring equals scoring prompt+option in one pass.
        let dev = Device::Cpu;
        let m = Model::synthetic(&tiny_config(2), 3, &dev).unwrap();
        let prompt = [5u32, 9, 14];
        let opt = [20u32, 30, 40];
        let mut cache = m.new_cache();
        let last = log_softmax(&m.forward(&prompt, &mut cache).unwrap().to_vec1().unwrap());
        let mut c = cache.clone();
        let rest = m.forward_all(&opt[..2], &mut c).unwrap();
        let cached = last[opt[0] as usize] + sum_target_logprobs(&rest, &opt[1..]).unwrap();
        let full: Vec<u32> = prompt.iter().chain(&opt).copied().collect();
        let all = m.forward_all(&full[..5], &mut m.new_cache()).unwrap();
        let direct = sum_target_logprobs(&all.narrow(0, 2, 3).unwrap(), &opt).unwrap();
        assert!((cached - direct).abs() < 1e-3, "{cached} vs {direct}");
        // Perplexity of the same text through text_nll is consistent with its NLL.
        let (nll, n) = text_nll(&m, &full, 64).unwrap();
        assert_eq!(n, 5);
        assert!(nll > 0.0);
        assert!((perplexity(nll, n) - (nll / 5.0).exp()).abs() < 1e-9);
        assert_eq!(text_nll(&m, &full, 3).unwrap().1, 2);
    }
}
