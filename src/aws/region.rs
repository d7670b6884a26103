//! Which AWS region to send to, found in the original daemon's order.
//!
//! Explicit (`-n` / cfg `Region`) > `AWS_REGION` > then, outside local mode, the ECS
//! container metadata file and EC2 instance metadata; in local mode, `AWS_DEFAULT_REGION`
//! and the selected profile's `region`.

use super::env::Env;
use super::profile::{ProfileSet, selected_profile_name};
use std::fmt;

/// No source had a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionNotFound;

impl fmt::Display for RegionNotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Word for word the original daemon's message: users and scripts search for it.
        f.write_str(
            "Cannot fetch region variable from config file, environment variables, ecs metadata, or ec2 metadata. Use local-mode to use the local config region.",
        )
    }
}

impl std::error::Error for RegionNotFound {}

/// Finds the region. `explicit` is the `-n` flag or the cfg file's `Region` (empty = unset).
///
/// `ec2_metadata_region` asks EC2 instance metadata for the region; it is only called
/// outside local mode when nothing earlier had a region, and its error is logged.
pub fn resolve_region<E: fmt::Display>(
    explicit: Option<&str>,
    local_mode: bool,
    env: &Env,
    ec2_metadata_region: impl FnOnce() -> Result<String, E>,
) -> Result<String, RegionNotFound> {
    if let Some(region) = explicit.map(str::trim).filter(|region| !region.is_empty()) {
        log::debug!("Fetch region {region} from commandline/config file");
        return Ok(region.to_owned());
    }
    if let Some(region) = env.get("AWS_REGION") {
        log::debug!("Fetch region {region} from environment variables");
        return Ok(region.to_owned());
    }
    let found = if local_mode {
        region_from_local_config(env)
    } else {
        region_from_ecs_metadata(env).or_else(|| match ec2_metadata_region() {
            Ok(region) if !region.trim().is_empty() => {
                log::debug!("Fetch region {region} from ec2 metadata");
                Some(region.trim().to_owned())
            }
            Ok(_) => {
                log::error!("Unable to fetch region from EC2 metadata: empty answer");
                None
            }
            Err(error) => {
                log::error!("Unable to fetch region from EC2 metadata: {error}");
                None
            }
        })
    };
    found.ok_or(RegionNotFound)
}

/// The region in the task ARN of the ECS container metadata file, when ECS enables it
/// (`ECS_ENABLE_CONTAINER_METADATA=true`, path in `ECS_CONTAINER_METADATA_FILE`).
pub fn region_from_ecs_metadata(env: &Env) -> Option<String> {
    if !env.is_true("ECS_ENABLE_CONTAINER_METADATA") {
        return None;
    }
    let Some(path) = env.get("ECS_CONTAINER_METADATA_FILE") else {
        log::error!("Unable to open ECS metadata file: ECS_CONTAINER_METADATA_FILE is not set");
        return None;
    };
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(error) => {
            log::error!("Unable to open ECS metadata file {path}: {error}");
            return None;
        }
    };
    match region_from_task_arn_document(&text) {
        Ok(region) => {
            log::debug!("Fetch region {region} from ECS metadata file");
            Some(region)
        }
        Err(reason) => {
            log::error!("Unable to read ECS metadata file contents of {path}: {reason}");
            None
        }
    }
}

/// `{"TaskARN": "arn:aws:ecs:us-west-2:123:task/…"}` → `us-west-2` (the ARN's 4th field).
fn region_from_task_arn_document(json: &[u8]) -> Result<String, String> {
    let document: serde_json::Value =
        serde_json::from_slice(json).map_err(|error| error.to_string())?;
    let task_arn = document
        .get("TaskARN")
        .and_then(serde_json::Value::as_str)
        .ok_or("no TaskARN string")?;
    match task_arn.split(':').nth(3) {
        Some(region) if !region.is_empty() => Ok(region.to_owned()),
        _ => Err(format!("TaskARN {task_arn:?} has no region field")),
    }
}

/// Local mode: `AWS_DEFAULT_REGION`, else the selected profile's `region`.
fn region_from_local_config(env: &Env) -> Option<String> {
    if let Some(region) = env.get("AWS_DEFAULT_REGION") {
        log::debug!("Fetched region {region} from config");
        return Some(region.to_owned());
    }
    let profiles = match ProfileSet::load(env) {
        Ok(profiles) => profiles,
        Err(error) => {
            log::error!("Unable to get default config: {error}");
            return None;
        }
    };
    let region = profiles
        .profile(selected_profile_name(env))?
        .get("region")
        .filter(|region| !region.is_empty())?;
    log::debug!("Fetched region {region} from config");
    Some(region.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::path::PathBuf;

    const NO_FILES: [(&str, &str); 2] = [
        ("AWS_CONFIG_FILE", "/nonexistent/xray-relay/config"),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/xray-relay/credentials",
        ),
    ];

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(NO_FILES.iter().chain(pairs.iter()).copied())
    }

    fn no_ec2() -> Result<String, String> {
        Err("no instance metadata in tests".to_owned())
    }

    fn temp_file(name: &str, contents: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("xray-relay-region-{name}-{}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn ecs_env(path: &std::path::Path) -> Env {
        env(&[
            ("ECS_ENABLE_CONTAINER_METADATA", "true"),
            ("ECS_CONTAINER_METADATA_FILE", path.to_str().unwrap()),
        ])
    }

    #[test]
    fn explicit_region_beats_everything() {
        let env = env(&[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_DEFAULT_REGION", "eu-west-2"),
        ]);
        let asked = Cell::new(false);
        let ec2 = || {
            asked.set(true);
            Ok::<_, String>("ap-east-1".to_owned())
        };
        assert_eq!(
            resolve_region(Some("us-west-2"), false, &env, ec2).unwrap(),
            "us-west-2"
        );
        assert!(!asked.get());
    }

    #[test]
    fn an_empty_explicit_region_counts_as_unset() {
        let env = env(&[("AWS_REGION", "eu-west-1")]);
        assert_eq!(
            resolve_region(Some(""), false, &env, no_ec2).unwrap(),
            "eu-west-1"
        );
        assert_eq!(
            resolve_region(None, true, &env, no_ec2).unwrap(),
            "eu-west-1"
        );
    }

    #[test]
    fn ecs_metadata_file_comes_before_ec2_metadata() {
        let path = temp_file(
            "ecs-ok",
            r#"{"Cluster":"c","TaskARN":"arn:aws:ecs:ap-southeast-2:123456789012:task/c/abc"}"#,
        );
        let asked = Cell::new(false);
        let ec2 = || {
            asked.set(true);
            Ok::<_, String>("us-east-1".to_owned())
        };
        assert_eq!(
            resolve_region(None, false, &ecs_env(&path), ec2).unwrap(),
            "ap-southeast-2"
        );
        assert!(!asked.get());
    }

    #[test]
    fn ecs_metadata_needs_the_enable_flag() {
        let path = temp_file(
            "ecs-flag",
            r#"{"TaskARN":"arn:aws:ecs:ap-southeast-2:1:task/x"}"#,
        );
        let env = env(&[
            ("ECS_ENABLE_CONTAINER_METADATA", "false"),
            ("ECS_CONTAINER_METADATA_FILE", path.to_str().unwrap()),
        ]);
        assert_eq!(region_from_ecs_metadata(&env), None);
        let upper = env_with_flag("TRUE", &path);
        assert_eq!(
            region_from_ecs_metadata(&upper).as_deref(),
            Some("ap-southeast-2")
        );
    }

    fn env_with_flag(flag: &str, path: &std::path::Path) -> Env {
        env(&[
            ("ECS_ENABLE_CONTAINER_METADATA", flag),
            ("ECS_CONTAINER_METADATA_FILE", path.to_str().unwrap()),
        ])
    }

    #[test]
    fn malformed_ecs_files_fall_through_to_ec2_metadata() {
        let cases = [
            ("not-json", "this is not json"),
            ("no-arn", r#"{"Cluster":"c"}"#),
            ("arn-not-string", r#"{"TaskARN":42}"#),
            ("short-arn", r#"{"TaskARN":"arn:aws:ecs"}"#),
            ("empty-region", r#"{"TaskARN":"arn:aws:ecs::1:task/x"}"#),
            ("not-object", r#"["arn:aws:ecs:us-east-1:1:task/x"]"#),
        ];
        for (name, contents) in cases {
            let path = temp_file(name, contents);
            let region = resolve_region(None, false, &ecs_env(&path), || {
                Ok::<_, String>("us-east-1".to_owned())
            });
            assert_eq!(region.unwrap(), "us-east-1", "case {name}");
        }
    }

    #[test]
    fn a_missing_ecs_file_or_path_falls_through() {
        let missing = ecs_env(std::path::Path::new("/nonexistent/xray-relay/ecs.json"));
        assert_eq!(region_from_ecs_metadata(&missing), None);
        let no_path = env(&[("ECS_ENABLE_CONTAINER_METADATA", "true")]);
        assert_eq!(region_from_ecs_metadata(&no_path), None);
    }

    #[test]
    fn ec2_metadata_is_the_last_resort_outside_local_mode() {
        let env = env(&[("AWS_DEFAULT_REGION", "eu-north-1")]);
        let region = resolve_region(None, false, &env, || {
            Ok::<_, String>("ca-central-1".to_owned())
        });
        assert_eq!(region.unwrap(), "ca-central-1");
    }

    #[test]
    fn outside_local_mode_the_default_region_and_profile_are_ignored() {
        let config = temp_file("ignored-config", "[default]\nregion = eu-south-1\n");
        let env = Env::from_pairs([
            ("AWS_DEFAULT_REGION", "eu-north-1"),
            ("AWS_CONFIG_FILE", config.to_str().unwrap()),
        ]);
        assert_eq!(
            resolve_region(None, false, &env, no_ec2),
            Err(RegionNotFound)
        );
        let blank = resolve_region(None, false, &env, || Ok::<_, String>("  ".to_owned()));
        assert_eq!(blank, Err(RegionNotFound));
    }

    #[test]
    fn local_mode_uses_the_default_region_variable_first() {
        let config = temp_file("local-both", "[default]\nregion = eu-south-1\n");
        let env = Env::from_pairs([
            ("AWS_DEFAULT_REGION", "eu-north-1"),
            ("AWS_CONFIG_FILE", config.to_str().unwrap()),
        ]);
        let region = resolve_region(None, true, &env, || -> Result<String, String> {
            panic!("local mode must not ask instance metadata")
        });
        assert_eq!(region.unwrap(), "eu-north-1");
    }

    #[test]
    fn local_mode_reads_the_selected_profile_region() {
        let config = temp_file(
            "local-profile",
            "[default]\nregion = eu-south-1\n[profile dev]\nregion = me-central-1\n",
        );
        let default = Env::from_pairs([("AWS_CONFIG_FILE", config.to_str().unwrap())]);
        assert_eq!(
            resolve_region(None, true, &default, no_ec2).unwrap(),
            "eu-south-1"
        );
        let dev = Env::from_pairs([
            ("AWS_CONFIG_FILE", config.to_str().unwrap()),
            ("AWS_PROFILE", "dev"),
        ]);
        assert_eq!(
            resolve_region(None, true, &dev, no_ec2).unwrap(),
            "me-central-1"
        );
    }

    #[test]
    fn local_mode_without_a_region_fails_and_ignores_ecs() {
        let path = temp_file(
            "local-ecs",
            r#"{"TaskARN":"arn:aws:ecs:ap-southeast-2:1:task/x"}"#,
        );
        assert_eq!(
            resolve_region(None, true, &ecs_env(&path), no_ec2),
            Err(RegionNotFound)
        );
        let broken = temp_file("local-broken", "[default]\nnot a property\n");
        let env = Env::from_pairs([("AWS_CONFIG_FILE", broken.to_str().unwrap())]);
        assert_eq!(
            resolve_region(None, true, &env, no_ec2),
            Err(RegionNotFound)
        );
    }

    #[test]
    fn the_error_message_matches_the_original() {
        assert_eq!(
            RegionNotFound.to_string(),
            "Cannot fetch region variable from config file, environment variables, ecs metadata, or ec2 metadata. Use local-mode to use the local config region."
        );
    }
}
