//! A snapshot of the environment variables and home directory the AWS parts read.
//!
//! Everything in `aws` reads the environment through an [`Env`] instead of `std::env`, so
//! tests can build one from pairs and never mutate the process environment.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Environment variables and the home directory, captured once.
#[derive(Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
    home: Option<PathBuf>,
}

impl Env {
    /// Captures the current process environment (variables that are not valid UTF-8 are
    /// skipped) and the home directory from `HOME`.
    pub fn from_process() -> Self {
        let vars: HashMap<String, String> = std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
            .collect();
        let home = vars
            .get("HOME")
            .filter(|home| !home.is_empty())
            .map(PathBuf::from);
        Env { vars, home }
    }

    /// Builds a snapshot from `(name, value)` pairs, with no home directory.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let vars = pairs
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        Env { vars, home: None }
    }

    /// Replaces the home directory used to expand `~` and find `~/.aws/…`.
    pub fn with_home(mut self, home: impl Into<PathBuf>) -> Self {
        self.home = Some(home.into());
        self
    }

    /// The value of `name`; an empty value counts as unset, as it does for the AWS SDKs.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }

    /// The first of `names` that is set.
    pub fn get_first(&self, names: &[&str]) -> Option<&str> {
        names.iter().find_map(|name| self.get(name))
    }

    /// Whether `name` is set to `true`, ignoring case.
    pub fn is_true(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|value| value.trim().eq_ignore_ascii_case("true"))
    }

    /// The home directory, if known.
    pub fn home(&self) -> Option<&Path> {
        self.home.as_deref()
    }

    /// Expands a leading `~/` (or a lone `~`) to the home directory; other paths pass through.
    pub fn expand_home(&self, path: &str) -> PathBuf {
        match (path.strip_prefix('~'), self.home()) {
            (Some(""), Some(home)) => home.to_path_buf(),
            (Some(rest), Some(home)) if rest.starts_with('/') => home.join(&rest[1..]),
            _ => PathBuf::from(path),
        }
    }
}

// Values can be secrets (AWS_SECRET_ACCESS_KEY), so Debug lists names only.
impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.vars.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("Env")
            .field("names", &names)
            .field("home", &self.home)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_count_as_unset() {
        let env = Env::from_pairs([("AWS_REGION", ""), ("AWS_PROFILE", "dev")]);
        assert_eq!(env.get("AWS_REGION"), None);
        assert_eq!(env.get("AWS_PROFILE"), Some("dev"));
        assert_eq!(env.get("MISSING"), None);
    }

    #[test]
    fn get_first_takes_the_first_set_name() {
        let env = Env::from_pairs([("https_proxy", "http://lower"), ("HTTPS_PROXY", "")]);
        assert_eq!(
            env.get_first(&["HTTPS_PROXY", "https_proxy"]),
            Some("http://lower")
        );
        assert_eq!(env.get_first(&["NOPE"]), None);
    }

    #[test]
    fn is_true_ignores_case_and_rejects_other_values() {
        let env = Env::from_pairs([("A", "TRUE"), ("B", "yes"), ("C", "True ")]);
        assert!(env.is_true("A"));
        assert!(!env.is_true("B"));
        assert!(env.is_true("C"));
        assert!(!env.is_true("D"));
    }

    #[test]
    fn expand_home_only_touches_a_leading_tilde() {
        let env = Env::from_pairs([]).with_home("/home/me");
        assert_eq!(
            env.expand_home("~/.aws/config"),
            PathBuf::from("/home/me/.aws/config")
        );
        assert_eq!(env.expand_home("~"), PathBuf::from("/home/me"));
        assert_eq!(env.expand_home("/etc/aws"), PathBuf::from("/etc/aws"));
        assert_eq!(env.expand_home("~other/x"), PathBuf::from("~other/x"));
        let homeless = Env::from_pairs([]);
        assert_eq!(homeless.expand_home("~/x"), PathBuf::from("~/x"));
    }

    #[test]
    fn debug_shows_names_but_not_values() {
        let env = Env::from_pairs([("AWS_SECRET_ACCESS_KEY", "very-secret-value")]);
        let printed = format!("{env:?}");
        assert!(printed.contains("AWS_SECRET_ACCESS_KEY"));
        assert!(!printed.contains("very-secret-value"));
    }

    #[test]
    fn from_process_reads_home() {
        let env = Env::from_process();
        assert_eq!(
            env.home().map(Path::to_path_buf),
            std::env::var_os("HOME")
                .filter(|home| !home.is_empty())
                .map(PathBuf::from)
        );
    }
}
