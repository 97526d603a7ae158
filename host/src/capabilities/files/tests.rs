use super::*;

#[test]
fn state_file_is_qemu_ga_key_file() {
    assert_eq!(format_state(1000), "[global]\nfd_counter=1000\n");
    assert_eq!(parse_state("[global]\nfd_counter=1003\n"), Some(1003));
    assert_eq!(parse_state("[other]\nfd_counter=5\n[global]\nfd_counter=7\n"), Some(7));
    assert_eq!(parse_state("garbage"), None);
}

#[test]
fn counter_persists_across_tables() {
    let dir = std::env::temp_dir().join(format!("qga-files-state-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let t = FileTable::new(&dir);
    assert_eq!(
        std::fs::read_to_string(dir.join("qga.state")).unwrap(),
        "[global]\nfd_counter=1000\n"
    );
    assert_eq!(t.add(File::open("/dev/null").unwrap(), Access::READ).unwrap(), 1000);
    assert_eq!(t.add(File::open("/dev/null").unwrap(), Access::READ).unwrap(), 1001);
    drop(t);
    let t = FileTable::new(&dir);
    assert_eq!(t.add(File::open("/dev/null").unwrap(), Access::READ).unwrap(), 1002);
    assert_eq!(
        std::fs::read_to_string(dir.join("qga.state")).unwrap(),
        "[global]\nfd_counter=1003\n"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn table_is_capped_and_a_failed_commit_uses_up_its_handle() {
    let dir = std::env::temp_dir().join(format!("qga-files-cap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let t = FileTable::new(&dir);
    for i in 0..MAX_OPEN_FILES {
        assert_eq!(
            t.add(File::open("/dev/null").unwrap(), Access::READ).unwrap(),
            1000 + i as i64
        );
    }
    assert!(!t.has_room());
    assert_eq!(
        t.add(File::open("/dev/null").unwrap(), Access::READ),
        Err(AddError::Full)
    );
    assert!(t.remove(1000).is_some());
    assert!(t.has_room());
    let next = 1000 + MAX_OPEN_FILES as i64;
    assert_eq!(t.add(File::open("/dev/null").unwrap(), Access::READ).unwrap(), next);
    // The state directory goes away: the commit fails, the handle is
    // spent (as in qemu-ga), nothing is left open and no temporary
    // file stays behind.
    t.remove(next);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        t.add(File::open("/dev/null").unwrap(), Access::READ),
        Err(AddError::Commit)
    );
    assert_eq!(t.len(), MAX_OPEN_FILES - 1);
    std::fs::create_dir_all(&dir).unwrap();
    assert_eq!(t.add(File::open("/dev/null").unwrap(), Access::READ).unwrap(), next + 2);
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["qga.state"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn modes_and_globs_decide() {
    let mut g = Grant::none().with(Capability::Files);
    g.files.rules = vec![FileRule::any_mode("/tmp/**"), FileRule::read_only("/var/log/*.log")];
    assert!(check_path(&g, "c", Path::new("/tmp/a"), "w+").is_ok());
    assert!(check_path(&g, "c", Path::new("/var/log/x.log"), "rb").is_ok());
    let e = check_path(&g, "c", Path::new("/var/log/x.log"), "a").unwrap_err();
    assert_eq!(
        e.to_string(),
        "permission denied: c may not open /var/log/x.log (mode 'a')"
    );
    assert!(check_path(&g, "c", Path::new("/etc/shadow"), "r").is_err());
    assert_eq!(base_mode("r+b"), "r+");
    assert_eq!(base_mode("ab+"), "a+");
}
