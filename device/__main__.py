"""`python -m device` is the `livespeaker` command."""

from device.cli import main

raise SystemExit(main())
