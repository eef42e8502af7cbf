//! The live progress line shared by `demo` and `job watch`.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use s3batch_store::Job;

pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    pub fn new(total: u64) -> Progress {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("  [{bar:40.cyan/blue}] {pos}/{len} tasks {msg} ({per_sec}, eta {eta})")
                .expect("static template")
                .progress_chars("=> "),
        );
        Progress { bar }
    }

    pub fn update(&self, j: &Job) {
        self.set(j.total_tasks, j.succeeded, j.failed, j.status.as_str());
    }

    /// From raw figures (the CLI reads them off the JSON API).
    pub fn set(&self, total: Option<i64>, succeeded: i64, failed: i64, status: &str) {
        if let Some(t) = total {
            self.bar.set_length(t as u64);
        }
        self.bar.set_position((succeeded + failed) as u64);
        self.bar.set_message(format!("{status}, {failed} failed"));
    }

    pub fn finish(&self, j: &Job) {
        self.update(j);
        self.bar.finish();
    }

    pub fn finish_plain(&self) {
        self.bar.finish();
    }
}
