//! The shared AWS config and credentials files (`~/.aws/config`, `~/.aws/credentials`).
//!
//! The format looks like INI but is not quite: the config file names profiles
//! `[profile name]` (except `[default]`), values may continue on indented lines, a property
//! with an empty value may hold indented sub-properties, and `#`/`;` start a comment at the
//! start of a line or after whitespace in a value. This is a small parser for exactly that.
//! Besides profiles it keeps the config file's `[sso-session name]` sections, which SSO
//! profiles point at with `sso_session`.

use super::env::Env;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Which of the two shared files is being read; they name profiles differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfileFileKind {
    /// `~/.aws/config`: `[default]` and `[profile name]`.
    Config,
    /// `~/.aws/credentials`: `[name]`.
    Credentials,
}

/// A shared file could not be read or parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileFileError {
    /// The file.
    pub path: PathBuf,
    /// The 1-based line, when the problem is on one line.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ProfileFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.path.display(), line, self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for ProfileFileError {}

/// One property value and the file it came from (for error messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Property {
    /// The value, trimmed, inline comment removed; continuation lines joined with `\n`.
    pub value: String,
    /// The file that set it.
    pub file: PathBuf,
}

/// The properties of one profile, merged from both files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Profile {
    properties: HashMap<String, Property>,
}

impl Profile {
    /// The value of a top-level property (names are case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.property(name).map(|property| property.value.as_str())
    }

    /// The property with its source file.
    pub fn property(&self, name: &str) -> Option<&Property> {
        self.properties.get(&name.to_ascii_lowercase())
    }

    /// Whether the profile sets any property at all.
    pub fn is_empty(&self) -> bool {
        self.properties.is_empty()
    }
}

/// Profiles parsed from one file, or merged from both, and the config file's SSO sessions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProfileSet {
    profiles: HashMap<String, Profile>,
    sso_sessions: HashMap<String, Profile>,
}

impl ProfileSet {
    /// Reads `AWS_CONFIG_FILE` (default `~/.aws/config`) and `AWS_SHARED_CREDENTIALS_FILE`
    /// (default `~/.aws/credentials`). A missing file is no profiles; for a property set in
    /// both, the credentials file wins, as in the AWS SDKs.
    pub fn load(env: &Env) -> Result<ProfileSet, ProfileFileError> {
        let mut set = ProfileSet::default();
        for (kind, variable, default) in [
            (ProfileFileKind::Config, "AWS_CONFIG_FILE", "~/.aws/config"),
            (
                ProfileFileKind::Credentials,
                "AWS_SHARED_CREDENTIALS_FILE",
                "~/.aws/credentials",
            ),
        ] {
            let path = env.expand_home(env.get(variable).unwrap_or(default));
            if let Some(text) = read_if_present(&path)? {
                set.merge(parse_profile_file(&text, kind, &path)?);
            }
        }
        Ok(set)
    }

    /// The named profile, if any file defines it.
    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.get(name)
    }

    /// The `[sso-session name]` section of the config file, if there is one.
    pub fn sso_session(&self, name: &str) -> Option<&Profile> {
        self.sso_sessions.get(name)
    }

    /// Overlays `other` on `self`, property by property.
    pub fn merge(&mut self, other: ProfileSet) {
        for (sections, theirs) in [
            (&mut self.profiles, other.profiles),
            (&mut self.sso_sessions, other.sso_sessions),
        ] {
            for (name, section) in theirs {
                sections
                    .entry(name)
                    .or_default()
                    .properties
                    .extend(section.properties);
            }
        }
    }

    /// The properties of `section`, created empty if new.
    fn section_mut(&mut self, section: &Section) -> &mut HashMap<String, Property> {
        let (sections, name) = match section {
            Section::Profile(name) => (&mut self.profiles, name),
            Section::SsoSession(name) => (&mut self.sso_sessions, name),
        };
        &mut sections.entry(name.clone()).or_default().properties
    }
}

/// A section the parser keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Section {
    /// `[default]`, `[profile name]` (config) or `[name]` (credentials).
    Profile(String),
    /// `[sso-session name]` (config file only).
    SsoSession(String),
}

/// The profile selected by `AWS_PROFILE`, else `default`.
pub fn selected_profile_name(env: &Env) -> &str {
    env.get("AWS_PROFILE").unwrap_or("default")
}

fn read_if_present(path: &Path) -> Result<Option<String>, ProfileFileError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(ProfileFileError {
            path: path.to_path_buf(),
            line: None,
            message: format!("cannot read: {error}"),
        }),
    }
}

/// Where the parser is: which section (None = a section we skip), and the last property.
struct Cursor {
    section: Option<Section>,
    last_property: Option<String>,
}

/// Parses one shared file's text; `path` is only used in errors and [`Property::file`].
pub fn parse_profile_file(
    text: &str,
    kind: ProfileFileKind,
    path: &Path,
) -> Result<ProfileSet, ProfileFileError> {
    let mut set = ProfileSet::default();
    let mut cursor: Option<Cursor> = None;
    for (index, raw) in text.lines().enumerate() {
        let error = |message: String| ProfileFileError {
            path: path.to_path_buf(),
            line: Some(index + 1),
            message,
        };
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if trimmed.starts_with('[') {
            let header = parse_section_header(trimmed).map_err(error)?;
            let section = section_kind(header, kind);
            if let Some(section) = &section {
                set.section_mut(section);
            }
            cursor = Some(Cursor {
                section,
                last_property: None,
            });
            continue;
        }
        let Some(cursor) = cursor.as_mut() else {
            return Err(error(
                "expected a [profile] header before the first property".to_owned(),
            ));
        };
        // An indented line continues the previous property; with none before it in this
        // section it is an ordinary property, as botocore reads it.
        let continues = raw
            .starts_with([' ', '\t'])
            .then(|| cursor.last_property.clone());
        if let Some(Some(parent)) = continues {
            if let Some(section) = &cursor.section
                && let Some(property) = set.section_mut(section).get_mut(&parent)
            {
                continue_property(property, trimmed).map_err(error)?;
            }
            continue;
        }
        let Some((name, value)) = trimmed.split_once('=') else {
            return Err(error(format!(
                "expected `name = value`, a [section] or a comment, found {trimmed:?}"
            )));
        };
        let name = name.trim().to_ascii_lowercase();
        if name.is_empty() {
            return Err(error("property without a name before `=`".to_owned()));
        }
        if let Some(section) = &cursor.section {
            let property = Property {
                value: strip_inline_comment(value).to_owned(),
                file: path.to_path_buf(),
            };
            set.section_mut(section).insert(name.clone(), property);
        }
        cursor.last_property = Some(name);
    }
    Ok(set)
}

/// `[ name ] # comment` → `name`.
fn parse_section_header(line: &str) -> Result<&str, String> {
    let Some((inside, after)) = line[1..].split_once(']') else {
        return Err(format!("section header without a closing `]`: {line:?}"));
    };
    let after = after.trim_start();
    if !(after.is_empty() || after.starts_with('#') || after.starts_with(';')) {
        return Err(format!("unexpected text after section header: {after:?}"));
    }
    let name = inside.trim();
    if name.is_empty() {
        return Err("empty section name `[]`".to_owned());
    }
    Ok(name)
}

/// The section a header opens, or None for sections the relay does not read (`[services x]`,
/// or a bare `[x]` in the config file).
fn section_kind(header: &str, kind: ProfileFileKind) -> Option<Section> {
    if kind == ProfileFileKind::Config
        && let Some(rest) = header.strip_prefix("sso-session")
        && rest.starts_with([' ', '\t'])
    {
        let name = rest.trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            log::warn!("Ignoring section [{header}]: not a valid sso-session name");
            return None;
        }
        return Some(Section::SsoSession(name.to_owned()));
    }
    profile_name(header, kind).map(|name| Section::Profile(name.to_owned()))
}

/// The profile a section defines, or None for sections that are not profiles.
fn profile_name(section: &str, kind: ProfileFileKind) -> Option<&str> {
    let name = match kind {
        ProfileFileKind::Credentials => section,
        ProfileFileKind::Config if section == "default" => section,
        ProfileFileKind::Config => {
            let rest = section.strip_prefix("profile")?;
            if !rest.starts_with([' ', '\t']) {
                log::warn!(
                    "Ignoring config file section [{section}]: profiles are named [profile name]"
                );
                return None;
            }
            rest.trim()
        }
    };
    if name.is_empty() || name.contains(char::is_whitespace) {
        log::warn!("Ignoring section [{section}]: not a valid profile name");
        return None;
    }
    Some(name)
}

/// An indented line: a sub-property when the parent's value is empty, else more value.
fn continue_property(property: &mut Property, line: &str) -> Result<(), String> {
    let is_sub_property_block = property.value.is_empty() || property.value.starts_with('\n');
    if is_sub_property_block {
        let Some((name, value)) = line.split_once('=') else {
            return Err(format!(
                "expected a sub-property `name = value`, found {line:?}"
            ));
        };
        let name = name.trim();
        if name.is_empty() {
            return Err("sub-property without a name before `=`".to_owned());
        }
        property.value.push('\n');
        property.value.push_str(name);
        property.value.push('=');
        property.value.push_str(strip_inline_comment(value));
    } else {
        property.value.push('\n');
        property.value.push_str(line);
    }
    Ok(())
}

/// `" value # note"` → `"value"`: a comment starts at `#` or `;` after whitespace.
fn strip_inline_comment(value: &str) -> &str {
    let mut previous_is_space = false;
    for (offset, character) in value.char_indices() {
        if previous_is_space && (character == '#' || character == ';') {
            return value[..offset].trim();
        }
        previous_is_space = character.is_whitespace();
    }
    value.trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, kind: ProfileFileKind) -> ProfileSet {
        parse_profile_file(text, kind, Path::new("/test/file")).unwrap()
    }

    fn parse_error(text: &str, kind: ProfileFileKind) -> ProfileFileError {
        parse_profile_file(text, kind, Path::new("/test/file")).unwrap_err()
    }

    #[test]
    fn config_file_names_profiles_with_the_profile_prefix() {
        let set = parse(
            "[default]\nregion = us-east-1\n\n[profile dev]\nregion=eu-west-1\n[profile\tqa ]\nregion = ap-south-1\n",
            ProfileFileKind::Config,
        );
        assert_eq!(
            set.profile("default").unwrap().get("region"),
            Some("us-east-1")
        );
        assert_eq!(set.profile("dev").unwrap().get("region"), Some("eu-west-1"));
        assert_eq!(set.profile("qa").unwrap().get("region"), Some("ap-south-1"));
        assert!(set.profile("profile dev").is_none());
    }

    #[test]
    fn config_file_ignores_sections_that_are_not_profiles() {
        let set = parse(
            "[dev]\nregion = us-east-1\n[sso-session corp]\nsso_region = us-east-1\n[profiledev]\nregion = x\n",
            ProfileFileKind::Config,
        );
        assert!(set.profile("dev").is_none());
        assert!(set.profile("corp").is_none());
        assert!(set.profile("profiledev").is_none());
        assert!(set.profile("sso-session corp").is_none());
    }

    #[test]
    fn sso_sessions_are_kept_apart_from_profiles() {
        let set = parse(
            "[sso-session corp]\nsso_region = eu-west-1 # home\nsso_start_url = https://corp.awsapps.com/start\n\
             [profile corp]\nsso_session = corp\n[sso-sessioncorp]\nsso_region = x\n",
            ProfileFileKind::Config,
        );
        let session = set.sso_session("corp").unwrap();
        assert_eq!(session.get("sso_region"), Some("eu-west-1"));
        assert_eq!(
            session.get("sso_start_url"),
            Some("https://corp.awsapps.com/start")
        );
        assert_eq!(
            set.profile("corp").unwrap().get("sso_session"),
            Some("corp")
        );
        assert!(set.profile("corp").unwrap().get("sso_region").is_none());
        assert!(set.sso_session("sso-sessioncorp").is_none());
        // The credentials file has no sessions: there `[sso-session corp]` is just a name.
        let set = parse(
            "[sso-session corp]\nsso_region = x\n",
            ProfileFileKind::Credentials,
        );
        assert!(set.sso_session("corp").is_none());
    }

    #[test]
    fn credentials_file_uses_names_as_written() {
        let set = parse(
            "[default]\naws_access_key_id = AKIDDEFAULT\n[dev]\naws_access_key_id = AKIDDEV\n",
            ProfileFileKind::Credentials,
        );
        assert_eq!(
            set.profile("default").unwrap().get("aws_access_key_id"),
            Some("AKIDDEFAULT")
        );
        assert_eq!(
            set.profile("dev").unwrap().get("aws_access_key_id"),
            Some("AKIDDEV")
        );
    }

    #[test]
    fn comments_are_whole_lines_or_after_whitespace_in_values() {
        let set = parse(
            "# top\n; also top\n[default] # trailing\n  # indented comment\nregion = us-west-2 # why\nkey = a#b;c\nother = x ;note\n",
            ProfileFileKind::Config,
        );
        let profile = set.profile("default").unwrap();
        assert_eq!(profile.get("region"), Some("us-west-2"));
        assert_eq!(profile.get("key"), Some("a#b;c"));
        assert_eq!(profile.get("other"), Some("x"));
    }

    #[test]
    fn sub_properties_do_not_leak_into_top_level_keys() {
        let set = parse(
            "[default]\ns3 =\n  region = should-not-win\n  max_concurrent_requests = 20 # c\nregion = us-east-2\n",
            ProfileFileKind::Config,
        );
        let profile = set.profile("default").unwrap();
        assert_eq!(profile.get("region"), Some("us-east-2"));
        assert_eq!(
            profile.get("s3"),
            Some("\nregion=should-not-win\nmax_concurrent_requests=20")
        );
    }

    #[test]
    fn continuation_lines_extend_a_non_empty_value() {
        let set = parse(
            "[default]\nnote = first\n  second\n",
            ProfileFileKind::Config,
        );
        assert_eq!(
            set.profile("default").unwrap().get("note"),
            Some("first\nsecond")
        );
    }

    #[test]
    fn an_indented_first_property_is_a_property() {
        let set = parse("[default]\n  region = us-east-1\n", ProfileFileKind::Config);
        assert_eq!(
            set.profile("default").unwrap().get("region"),
            Some("us-east-1")
        );
    }

    #[test]
    fn keys_are_case_insensitive_and_later_values_win() {
        let set = parse(
            "[default]\nAWS_Access_Key_ID = A\n[default]\naws_access_key_id = B\n",
            ProfileFileKind::Credentials,
        );
        assert_eq!(
            set.profile("default").unwrap().get("AWS_ACCESS_KEY_ID"),
            Some("B")
        );
    }

    #[test]
    fn values_may_contain_equals_signs() {
        let set = parse(
            "[default]\naws_secret_access_key = abc/def==\n",
            ProfileFileKind::Credentials,
        );
        assert_eq!(
            set.profile("default").unwrap().get("aws_secret_access_key"),
            Some("abc/def==")
        );
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let error = parse_error(
            "[default]\nregion = x\nnot a property\n",
            ProfileFileKind::Config,
        );
        assert_eq!(error.line, Some(3));
        assert!(
            error
                .to_string()
                .starts_with("/test/file:3: expected `name = value`"),
            "{error}"
        );

        let error = parse_error("region = x\n", ProfileFileKind::Config);
        assert_eq!(error.line, Some(1));
        assert!(error.message.contains("before the first property"));

        let error = parse_error("[default\n", ProfileFileKind::Config);
        assert!(error.message.contains("closing"));

        let error = parse_error("[default] junk\n", ProfileFileKind::Config);
        assert!(error.message.contains("after section header"));

        let error = parse_error("[]\n", ProfileFileKind::Credentials);
        assert!(error.message.contains("empty section"));

        let error = parse_error("[default]\n= value\n", ProfileFileKind::Config);
        assert!(error.message.contains("without a name"));

        let error = parse_error("[default]\ns3 =\n  no-equals\n", ProfileFileKind::Config);
        assert_eq!(error.line, Some(3));
        assert!(error.message.contains("sub-property"));
    }

    #[test]
    fn properties_of_skipped_sections_are_not_errors() {
        let set = parse(
            "[services x]\nxray =\n  endpoint_url = http://x\n[default]\nregion = r\n",
            ProfileFileKind::Config,
        );
        assert_eq!(set.profile("default").unwrap().get("region"), Some("r"));
    }

    #[test]
    fn an_empty_section_still_defines_the_profile() {
        let set = parse("[profile empty]\n", ProfileFileKind::Config);
        assert!(set.profile("empty").unwrap().is_empty());
    }

    #[test]
    fn crlf_line_endings_are_accepted() {
        let set = parse(
            "[default]\r\nregion = us-east-1\r\n",
            ProfileFileKind::Config,
        );
        assert_eq!(
            set.profile("default").unwrap().get("region"),
            Some("us-east-1")
        );
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("xray-relay-profile-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn load_merges_files_with_the_credentials_file_winning() {
        let dir = temp_dir("merge");
        let config = dir.join("config");
        let credentials = dir.join("credentials");
        std::fs::write(
            &config,
            "[profile dev]\nregion = eu-central-1\naws_access_key_id = FROMCONFIG\n",
        )
        .unwrap();
        std::fs::write(&credentials, "[dev]\naws_access_key_id = FROMCREDENTIALS\n").unwrap();
        let env = Env::from_pairs([
            ("AWS_CONFIG_FILE", config.to_str().unwrap()),
            ("AWS_SHARED_CREDENTIALS_FILE", credentials.to_str().unwrap()),
        ]);
        let set = ProfileSet::load(&env).unwrap();
        let dev = set.profile("dev").unwrap();
        assert_eq!(dev.get("region"), Some("eu-central-1"));
        assert_eq!(dev.get("aws_access_key_id"), Some("FROMCREDENTIALS"));
        assert_eq!(dev.property("aws_access_key_id").unwrap().file, credentials);
        assert_eq!(dev.property("region").unwrap().file, config);
    }

    #[test]
    fn load_defaults_to_the_home_directory_and_tolerates_missing_files() {
        let dir = temp_dir("home");
        std::fs::create_dir_all(dir.join(".aws")).unwrap();
        std::fs::write(dir.join(".aws/config"), "[default]\nregion = sa-east-1\n").unwrap();
        let _ = std::fs::remove_file(dir.join(".aws/credentials"));
        let env = Env::from_pairs([]).with_home(&dir);
        let set = ProfileSet::load(&env).unwrap();
        assert_eq!(
            set.profile("default").unwrap().get("region"),
            Some("sa-east-1")
        );

        let nowhere = Env::from_pairs([("AWS_CONFIG_FILE", "/nonexistent/xray-relay/config")]);
        assert_eq!(ProfileSet::load(&nowhere).unwrap(), ProfileSet::default());
    }

    #[test]
    fn load_reports_parse_errors_with_the_path() {
        let dir = temp_dir("bad");
        let config = dir.join("config");
        std::fs::write(&config, "[default]\nbroken\n").unwrap();
        let env = Env::from_pairs([("AWS_CONFIG_FILE", config.to_str().unwrap())]);
        let error = ProfileSet::load(&env).unwrap_err();
        assert_eq!(error.path, config);
        assert_eq!(error.line, Some(2));
    }

    #[test]
    fn selected_profile_defaults_to_default() {
        assert_eq!(selected_profile_name(&Env::from_pairs([])), "default");
        assert_eq!(
            selected_profile_name(&Env::from_pairs([("AWS_PROFILE", "dev")])),
            "dev"
        );
    }
}
