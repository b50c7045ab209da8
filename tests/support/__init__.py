"""Test helpers shared by the test folders (a package: ``from tests.support.X import Y``)."""
