//! Several checks inside a container in one `peapod exec` (a CLI run costs the test VM about
//! 0.4 s of CPU; a test that runs one exec a check pays that for each).

use super::exec;

/// Runs each of `scripts` under `sh` in `container` of `pod`, one after the other in one
/// exec, each in a subshell; returns each script's output in turn. Panics naming the first
/// script that did not exit 0 (with its output).
pub fn sh_all(pod: &str, container: &str, scripts: &[&str]) -> Vec<String> {
    const END: &str = "\n@@peapod-test-end ";
    let joined: String = scripts
        .iter()
        .map(|script| {
            format!(
                "( {script}\n); printf '{}%d\\n' $?\n",
                END.replace('\n', "\\n")
            )
        })
        .collect();
    let (code, out) = exec(pod, container, &["sh", "-c", &joined]);
    assert_eq!(code, 0, "`{joined}` failed in {pod}: {out}");
    let mut parts = out.split(END);
    let mut current = parts.next().unwrap_or_default().to_string();
    let mut outputs = Vec::new();
    for (script, part) in scripts.iter().zip(parts) {
        let (status, rest) = part.split_once('\n').unwrap_or((part, ""));
        assert_eq!(status, "0", "`{script}` failed in {pod}: {current}");
        outputs.push(std::mem::replace(&mut current, rest.to_string()));
    }
    assert_eq!(outputs.len(), scripts.len(), "`{joined}` in {pod}: {out}");
    outputs
}
