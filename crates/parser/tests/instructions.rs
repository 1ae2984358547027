//! Typed instructions from real parse trees: flags, argument shapes and
//! BuildKit's error messages.

use rbk_graph::{NetworkMode, SecurityMode};
use rbk_parser::instructions::{
    parse_dockerfile, ArgDecl, CopySource, Dockerfile, Instruction, KeyValue, MountType,
};
use rbk_parser::parse;

fn typed(text: &str) -> Result<Dockerfile, String> {
    let ast = parse(text, "Dockerfile").map_err(|e| e.to_string())?;
    parse_dockerfile(&ast.root, "Dockerfile").map_err(|e| e.to_string())
}

fn first(text: &str) -> Instruction {
    typed(text).unwrap().stages[0].commands[0]
        .instruction
        .clone()
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: v.into(),
    }
}

#[test]
fn from_names_are_lowercased_and_checked() {
    let df = typed("ARG A=1\nFROM --platform=linux/arm64 busybox AS Build\n").unwrap();
    assert_eq!(df.meta_args.len(), 1);
    let stage = &df.stages[0];
    assert_eq!(stage.name.as_deref(), Some("build"));
    assert_eq!(stage.platform.as_deref(), Some("linux/arm64"));
    assert_eq!(stage.base_name, "busybox");
    assert!(typed("FROM a AS b-c_d.e\n").is_ok());
    assert!(typed("FROM a AS -x\n")
        .unwrap_err()
        .contains("invalid name for build stage"));
    assert!(typed("FROM --plat=x a\n")
        .unwrap_err()
        .ends_with("unknown flag: plat"));
}

#[test]
fn env_label_arg_shapes() {
    assert_eq!(
        first("FROM a\nENV A=1 B=\"x y\"\n"),
        Instruction::Env(vec![kv("A", "1"), kv("B", "\"x y\"")])
    );
    assert_eq!(
        first("FROM a\nENV A b c\n"),
        Instruction::Env(vec![kv("A", "b c")])
    );
    assert_eq!(
        first("FROM a\nLABEL a=b c=d\n"),
        Instruction::Label(vec![kv("a", "b"), kv("c", "d")])
    );
    let args = vec![
        ArgDecl {
            key: "A".into(),
            value: None,
        },
        ArgDecl {
            key: "B".into(),
            value: Some("2".into()),
        },
        ArgDecl {
            key: "C".into(),
            value: Some(String::new()),
        },
    ];
    assert_eq!(first("FROM a\nARG A B=2 C=\n"), Instruction::Arg(args));
    assert!(typed("FROM a\nARG =x\n")
        .unwrap_err()
        .ends_with("ARG names can not be blank"));
}

#[test]
fn run_flags() {
    let Instruction::Run(run) = first(
        "FROM a\nRUN --mount=type=cache,target=/c --mount=type=secret,id=s --network=none --security=insecure make\n",
    ) else {
        panic!("not RUN")
    };
    assert_eq!(run.mounts.len(), 2);
    assert_eq!(run.network, NetworkMode::None);
    assert_eq!(run.security, SecurityMode::Insecure);
    assert_eq!(run.cmd.args, vec!["make"]);
    assert!(run.cmd.prepend_shell);
    let m = rbk_parser::instructions::parse_mount(&run.mounts[0], None).unwrap();
    assert_eq!(m.kind, MountType::Bind, "type is only read when expanding");
    let Instruction::Run(run) = first("FROM a\nRUN [\"echo\", \"hi\"]\n") else {
        panic!()
    };
    assert_eq!(
        (run.cmd.args, run.cmd.prepend_shell),
        (vec!["echo".to_string(), "hi".to_string()], false)
    );
    assert!(typed("FROM a\nRUN --network=bridge x\n")
        .unwrap_err()
        .contains("unsupported network mode"));
    assert!(typed("FROM a\nRUN --mount=type=bind,from=$X,target=/x x\n").is_err());
}

#[test]
fn copy_and_add_flags() {
    let Instruction::Copy(c) = first(
        "FROM a\nCOPY --from=b --chown=1:2 --chmod=755 --link --parents --exclude=x --exclude=y s1 s2 /d/\n",
    ) else {
        panic!("not COPY")
    };
    assert_eq!(c.from.as_deref(), Some("b"));
    assert_eq!(
        (c.chown.as_deref(), c.chmod.as_deref()),
        (Some("1:2"), Some("755"))
    );
    assert!(c.link && c.parents);
    assert_eq!(c.exclude, vec!["x", "y"]);
    assert_eq!(
        c.sources,
        vec![CopySource::Path("s1".into()), CopySource::Path("s2".into())]
    );
    assert_eq!(c.dest, "/d/");
    let Instruction::Add(a) =
        first("FROM a\nADD --checksum=sha256:ab --keep-git-dir --unpack=false u /d\n")
    else {
        panic!("not ADD")
    };
    assert_eq!(
        (a.checksum.as_deref(), a.keep_git_dir, a.unpack),
        (Some("sha256:ab"), true, Some(false))
    );
    assert!(typed("FROM a\nADD --from=x a b\n")
        .unwrap_err()
        .ends_with("unknown flag: from"));
    assert!(typed("FROM a\nCOPY --checksum=x a b\n")
        .unwrap_err()
        .ends_with("unknown flag: checksum"));
    assert!(typed("FROM a\nADD x\n")
        .unwrap_err()
        .contains("ADD requires at least two arguments"));
    assert!(typed("FROM a\nCOPY --link=1 a b\n")
        .unwrap_err()
        .contains("expecting boolean value"));
}

#[test]
fn copy_heredoc_sources() {
    let Instruction::Copy(c) = first("FROM a\nCOPY <<-EOF /x\n\thello\nEOF\n") else {
        panic!()
    };
    let CopySource::Heredoc(doc) = &c.sources[0] else {
        panic!("no heredoc")
    };
    assert_eq!(doc.name, "EOF");
    assert_eq!(doc.content(), "hello\n");
}

#[test]
fn healthcheck_forms() {
    let Instruction::Healthcheck(h) =
        first("FROM a\nHEALTHCHECK --interval=30s --retries=2 CMD [\"true\"]\n")
    else {
        panic!()
    };
    assert_eq!(h.test, vec!["CMD", "true"]);
    assert_eq!((h.interval, h.retries), (30_000_000_000, 2));
    let Instruction::Healthcheck(h) = first("FROM a\nHEALTHCHECK NONE\n") else {
        panic!()
    };
    assert_eq!(h.test, vec!["NONE"]);
    assert!(typed("FROM a\nHEALTHCHECK --interval=0.5ms CMD x\n")
        .unwrap_err()
        .contains("cannot be less than 1ms"));
    assert!(typed("FROM a\nHEALTHCHECK --start-interval=0s CMD x\n").is_ok());
    assert!(typed("FROM a\nHEALTHCHECK BOGUS x\n")
        .unwrap_err()
        .contains("Unknown type \"BOGUS\""));
}

#[test]
fn misc_instructions() {
    assert_eq!(
        first("FROM a\nONBUILD  RUN echo x\n"),
        Instruction::Onbuild("RUN echo x".into())
    );
    assert_eq!(
        first("FROM a\nEXPOSE 8080 80\n"),
        Instruction::Expose(vec!["80".into(), "8080".into()])
    );
    assert_eq!(
        first("FROM a\nVOLUME [\"/a\", \"/b\"]\n"),
        Instruction::Volume(vec!["/a".into(), "/b".into()])
    );
    assert_eq!(
        first("FROM a\nSHELL [\"pwsh\", \"-c\"]\n"),
        Instruction::Shell(vec!["pwsh".into(), "-c".into()])
    );
    assert!(typed("FROM a\nSHELL pwsh -c\n")
        .unwrap_err()
        .contains("JSON form"));
    assert!(typed("FROM a\nONBUILD MAINTAINER x\n")
        .unwrap_err()
        .contains("isn't allowed as an ONBUILD trigger"));
    assert!(typed("RUN x\n")
        .unwrap_err()
        .ends_with("no build stage in current context"));
}

#[test]
fn errors_carry_file_and_line() {
    let ast = parse("FROM a\n\nCOPY --bogus a b\n", "my.Dockerfile").unwrap();
    let err = parse_dockerfile(&ast.root, "my.Dockerfile").unwrap_err();
    assert_eq!(err.location().file, "my.Dockerfile");
    assert_eq!(err.location().line, 3);
    assert_eq!(err.to_string(), "my.Dockerfile:3: unknown flag: bogus");
}
