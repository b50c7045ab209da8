import sys

from chargeback.tools.cli import main

sys.exit(main())
