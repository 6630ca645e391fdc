"""scdiff's command line (typer). Installed as ``scdiff.cli``."""
def main():
    print("ok")
