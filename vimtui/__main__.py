from vimtui.cli.main import main

raise SystemExit(main())
