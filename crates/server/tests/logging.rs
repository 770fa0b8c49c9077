//! The rolling file appender rolls at the size limit (own test binary: log4rs initializes once).

// Test helpers outside #[test] fns: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;

use sqlmatic_server::logging::{LoggingConfig, init};

#[test]
fn the_log_file_rolls_past_its_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sqlmatic.log");
    let config = LoggingConfig {
        console: false,
        file: Some(file.clone()),
        file_max_bytes: 1024,
        file_count: 3,
        ..LoggingConfig::default()
    };
    let _handle = init(&config).unwrap();
    for i in 0..400 {
        log::info!("line {i}: {}", "y".repeat(40));
    }
    log::logger().flush();
    let rolled = dir.path().join("sqlmatic.1.log.gz");
    assert!(
        rolled.exists(),
        "no rolled file in {:?}",
        std::fs::read_dir(dir.path()).unwrap().collect::<Vec<_>>()
    );
    let mut magic = [0u8; 2];
    std::fs::File::open(&rolled).unwrap().read_exact(&mut magic).unwrap();
    assert_eq!(magic, [0x1f, 0x8b], "rolled files are gzip");
    assert!(dir.path().join("sqlmatic.3.log.gz").exists());
    assert!(!dir.path().join("sqlmatic.4.log.gz").exists(), "the window keeps 3 files");
    assert!(std::fs::metadata(&file).unwrap().len() <= 1024 + 200);
}
