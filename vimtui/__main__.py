from vimtui.cli import main

raise SystemExit(main())
