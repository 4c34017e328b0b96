from setuptools import find_packages, setup

setup(
    name='nicos-scriptserver',
    version='0.1.0',
    description='Script server for neutron and muon instruments, built on NICOS',
    packages=find_packages(include=['nicos_scriptserver', 'nicos_scriptserver.*',
                                    'gui_panels', 'gui_panels.*']),
    include_package_data=True,
    package_data={'nicos_scriptserver': ['demo/*.conf',
                                        'daemon/private-dryrun-channel']},
    python_requires='>=3.11',
    install_requires=['nicos-pyctl', 'pyzmq', 'rsa', 'numpy<2', 'toml', 'scipy',
                      'pyepics', 'pcaspy'],
    extras_require={'gui': ['PyQt5', 'html2text', 'lttb'],
                    'test': ['pytest', 'pytest-timeout', 'pytest-qt', 'hypothesis']},
    entry_points={'console_scripts': [
        'nicos-scriptserver = nicos_scriptserver.clients.cli:main',
    ]},
)
