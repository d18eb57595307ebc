"""Demonstration articles for ``itsm demo``: a few published answers and one draft."""

from __future__ import annotations

from itsm.plugin import DemoContext

AUTHOR = "agent@demo.invalid"

PUBLISHED = [
    {"title": "Connect to the VPN from home",
     "service": "VPN", "category": "How-to",
     "description": (
         "Use the VPN to reach internal applications from outside the office.\n\n"
         "1. Start **GlobalConnect** from the Start menu.\n"
         "2. Enter the portal address `vpn.example.gov`.\n"
         "3. Sign in with your network account and approve the prompt on your phone.\n\n"
         "If the tunnel drops every hour, update the client to version 6.1 or later: "
         "older clients do not renew their session.")},
    {"title": "Reset your password",
     "service": "Accounts", "category": "How-to",
     "description": (
         "You can reset your password yourself, at any time.\n\n"
         "1. Open the self-service page and choose *Forgot password*.\n"
         "2. Confirm the code sent to your registered mobile phone.\n"
         "3. Choose a new password of at least 12 characters.\n\n"
         "The new password works everywhere within 15 minutes. Locked out after five "
         "attempts? Wait 15 minutes or call the service desk.")},
    {"title": "Printer shows \"paper jam\" but no paper is stuck",
     "service": "Printing", "category": "Troubleshooting",
     "description": (
         "The floor printers report a jam when the rear sensor is dusty.\n\n"
         "- Switch the printer off and open the rear door.\n"
         "- Remove any scrap of paper and close the door firmly.\n"
         "- Switch the printer on again.\n\n"
         "If the message comes back, report an incident and name the printer's asset tag.")},
    {"title": "Set up work e-mail on your phone",
     "service": "E-mail", "category": "How-to",
     "description": (
         "Work e-mail on a phone needs the **Outlook** app; the built-in mail apps are "
         "blocked.\n\n"
         "1. Install Outlook from your phone's app store.\n"
         "2. Add your work address and sign in.\n"
         "3. Accept the device policy (screen lock, encryption).\n\n"
         "Calendar and contacts synchronise through the same app.")},
]

DRAFT = {
    "title": "Request access to a shared mailbox",
    "service": "E-mail", "category": "How-to",
    "description": ("Shared mailboxes are granted by their owner.\n\n"
                    "Ask the owner to approve your request in the catalog; access appears "
                    "in Outlook after the next restart."),
}


def load_demo_articles(ctx: DemoContext) -> None:
    """Publish the demo articles through the workflow, as an agent would."""
    author = ctx.service(AUTHOR)
    for values in PUBLISHED:
        article = author.create("article", values)
        author.transition(article, "submit")
        author.transition(article, "publish")
    author.create("article", DRAFT)
