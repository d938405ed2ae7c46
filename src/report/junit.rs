//! The JUnit XML report: one testsuite per apply, one testcase per
//! instance (classname = node, name = instance key); a failed instance is a
//! failure whose message is its stop reason, a skipped one is skipped.

use std::path::Path;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::runner::outcome::Status;
use crate::runner::summary::Summary;

/// Writes the report for `summary` to `path`.
pub(crate) fn write_junit(summary: &Summary, path: &Path) -> std::io::Result<()> {
    let mut report = Report::new(format!("conductor {}", summary.workflow));
    let mut suite = TestSuite::new(summary.workflow.clone());
    for i in &summary.instances {
        let status = match i.status {
            Status::Done => TestCaseStatus::success(),
            Status::Failed => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(i.stop_reason.to_string());
                s.set_type(i.stop_reason.to_string());
                s.set_description(i.output.clone());
                s
            }
            Status::Skipped => {
                let mut s = TestCaseStatus::skipped();
                s.set_message(i.stop_reason.to_string());
                s
            }
        };
        let mut case = TestCase::new(i.key.clone(), status);
        case.set_classname(i.node.clone());
        case.set_time(std::time::Duration::from_millis(i.duration_ms));
        suite.add_test_case(case);
    }
    for s in &summary.success {
        let status = if s.exit_code == 0 {
            TestCaseStatus::success()
        } else {
            let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
            st.set_message(format!("exit {}", s.exit_code));
            st
        };
        let mut case = TestCase::new(s.command.clone(), status);
        case.set_classname("[success]");
        suite.add_test_case(case);
    }
    report.add_test_suite(suite);
    let xml = report
        .to_string()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    crate::store::write_atomic(path, xml.as_bytes())
}
