import sys

from chargeback.cli import main

sys.exit(main())
