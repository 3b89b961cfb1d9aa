//! Owner and repository of a source stamp, as Buildbot's `giturlparse` reads them.

/// `(owner, repo)` from a repository URL: `git@host:o/r.git`, `https://[user[:pw]@]host[:port]/o/r`,
/// `ssh://[user@]host[:port]/o/r`, `git://host/o/r`, with or without `.git`; the owner may hold
/// `/` (everything before the last segment). `None` when it names no owner and repository.
pub fn parse_repository(url: &str) -> Option<(String, String)> {
    let url = url.trim();
    let path = if let Some((_, rest)) = url.split_once("://") {
        // scheme://[user[:pw]@]host[:port]/path
        let (_, path) = rest.split_once('/')?;
        path
    } else if let Some((host, path)) = url.split_once(':') {
        // scp-like: [user@]host:path (no scheme)
        if host.is_empty() || host.contains('/') {
            return None;
        }
        path
    } else {
        return None;
    };
    let path = path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let (owner, repo) = path.rsplit_once('/')?;
    let owner = owner.trim_start_matches('/');
    (!owner.is_empty() && !repo.is_empty()).then(|| (owner.to_owned(), repo.to_owned()))
}

/// `(owner, repo)` from a source stamp's `project` (`owner/repo`, exactly one `/`) or its
/// `repository` URL.
pub fn owner_repo(project: Option<&str>, repository: Option<&str>) -> Option<(String, String)> {
    if let Some(p) = project
        && let Some((o, r)) = p.split_once('/')
        && !o.is_empty()
        && !r.is_empty()
        && !r.contains('/')
    {
        return Some((o.to_owned(), r.to_owned()));
    }
    parse_repository(repository?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_url_form() {
        let want = Some(("octo".to_owned(), "widget".to_owned()));
        for url in [
            "git@github.com:octo/widget.git",
            "git@github.com:octo/widget",
            "https://github.com/octo/widget.git",
            "https://github.com/octo/widget",
            "https://user:secret@github.com:443/octo/widget.git",
            "ssh://git@github.com/octo/widget.git",
            "ssh://git@github.com:22/octo/widget",
            "git://github.com/octo/widget.git",
            "http://ghe.example.org/octo/widget/",
        ] {
            assert_eq!(parse_repository(url), want, "{url}");
        }
        assert_eq!(
            parse_repository("https://gitlab.example.org/group/sub/widget.git"),
            Some(("group/sub".to_owned(), "widget".to_owned()))
        );
        for bad in [
            "",
            "widget",
            "https://github.com/",
            "https://github.com/onlyowner",
            "/local/path",
        ] {
            assert_eq!(parse_repository(bad), None, "{bad}");
        }
        assert_eq!(owner_repo(Some("octo/widget"), None), want);
        assert_eq!(owner_repo(Some("a/b/c"), Some("git@h:octo/widget")), want);
        assert_eq!(owner_repo(Some("demo"), None), None);
    }
}
