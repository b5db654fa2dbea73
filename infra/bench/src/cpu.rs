//! CPU time from /proc: of a function's processes on the local stack, and of DynamoDB Local
//! (the Java process serving the stack's table), in milliseconds of user + system time.

use local_gateway::LocalStack;

/// `getconf CLK_TCK` on Linux: the unit of /proc's CPU times.
const TICKS_PER_SECOND: f64 = 100.0;

/// User + system ticks of one process so far.
fn ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces), from field 3 on.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn ms(ticks: u64) -> f64 {
    ticks as f64 * 1e3 / TICKS_PER_SECOND
}

/// CPU time the function's processes used so far.
pub fn function_ms(stack: &LocalStack, function: &str) -> f64 {
    ms(stack
        .function_pids()
        .into_iter()
        .filter(|(name, _)| name.ends_with(function))
        .flat_map(|(_, pids)| pids)
        .filter_map(ticks)
        .sum())
}

/// CPU time DynamoDB Local used so far (every process running its jar), if it runs here.
pub fn dynamodb_local_ms() -> Option<f64> {
    let total: u64 = std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmd| String::from_utf8_lossy(&cmd).contains("DynamoDBLocal.jar"))
        })
        .filter_map(ticks)
        .sum();
    (total > 0).then(|| ms(total))
}
