"""Packaging for Madoguchi. pyproject.toml is the build front door; the metadata lives here."""
from setuptools import find_packages, setup

DEVICES = [
    "pyscard>=2.2,<3",
    "pyserial>=3.5,<4",
    "python-escpos>=3.1,<4",
    "pycups>=2.0,<3",
    "pillow>=10,<14",
    "segno>=1.6,<2",
]
UI = [
    "kivy>=2.3,<3",
    "babel>=2.14,<3",
]
CITYHALL = [
    "fastapi>=0.115,<1",
    "uvicorn>=0.30,<1",
    "psycopg[binary]>=3.2,<4",
    "reportlab>=4.2,<6",
    "segno>=1.6,<2",
    "jinja2>=3.1,<4",
    "python-multipart>=0.0.9,<1",
    "pypdf>=5,<8",
    "pyzbar>=0.1.9,<0.2",  # reads the QR inside a certificate PDF (Debian libzbar0)
]
TEST = [
    "pytest>=8,<10",
    "pytest-timeout>=2.3,<3",
    "hypothesis>=6.100,<7",
    "httpx>=0.27,<1",
    "playwright>=1.45,<2",
]

setup(
    name="madoguchi",
    version="0.1.0",
    description="Self-service certificate kiosk for Japanese cities (My Number card, cash/QR, CUPS)",
    python_requires=">=3.11",
    packages=find_packages(include=["kiosk*", "drivers*", "screens*", "sync*", "cityhall*"]),
    include_package_data=True,
    package_data={
        "": ["*.kv", "*.toml", "*.po", "*.mo", "*.html", "*.css", "*.json", "*.pem", "*.txt"],
    },
    install_requires=[
        "cryptography>=42,<51",
        "sqlite-utils>=4.2,<5",  # 4.2 is the first line with real transactions
        "requests>=2.31,<3",
    ],
    extras_require={
        "devices": DEVICES,
        "ui": UI,
        "cityhall": CITYHALL,
        "test": TEST,
        "all": DEVICES + UI + CITYHALL,
    },
    entry_points={
        "console_scripts": [
            "kiosk=kiosk.cli:kiosk_main",
            "kioskctl=kiosk.kioskctl:main",
            "cityhall=cityhall.cli:main",
            "kiosk-sim=drivers.sim.cli:main",
        ],
    },
)
