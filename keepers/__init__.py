"""perpool keepers: the Python daemons that push prices, liquidate and deleverage.

The chain client, price sources and decision logic land in later issues; for now the
package holds the deployment-file loader shared by scripts and keepers.
"""
