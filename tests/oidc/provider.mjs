// The oidc plugin's test provider: oidc-provider on 127.0.0.1:<port> with two clients
// (itsm for the motor vehicles agency, itsm-tax for the revenue agency), its development
// login form (any password), single sign-out back to itsm's sign-in page, and four people.
// Usage: node provider.mjs PORT ITSM_BASE_URL CLIENT_SECRET
import Provider from 'oidc-provider';

const [port, base, secret] = process.argv.slice(2);
const people = {
  ann: { email: 'ann@dmv.example.org', email_verified: true, name: 'Ann Lee',
         groups: ['dmv-desk', 'dmv-staff'] },
  dan: { email: 'dan@dmv.example.org', email_verified: true, name: 'Dan Cole',
         groups: ['dmv-staff'] },
  tom: { email: 'tom@tax.example.org', email_verified: true, name: 'Tom Hart',
         groups: ['tax-staff'] },
  mallory: { email: 'mallory@tax.example.org', email_verified: true, name: 'Mallory',
             groups: ['tax-staff'] },
};
const client = (id, names) => ({
  client_id: id, client_secret: secret,
  redirect_uris: names.map((name) => `${base}/sso/oidc/${name}/callback`),
  post_logout_redirect_uris: [`${base}/login`],
  grant_types: ['authorization_code'], response_types: ['code'],
});
const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [client('itsm', ['agency', 'dmv']), client('itsm-tax', ['tax'])],
  pkce: { required: () => true },
  scopes: ['openid', 'email', 'profile', 'groups'],
  claims: { email: ['email', 'email_verified'], profile: ['name'], groups: ['groups'] },
  conformIdTokenClaims: false,  // the groups claim in the ID token itself
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => ({ sub: id, ...(people[id] || {}) }),
  }),
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
});
provider.listen(Number(port), '127.0.0.1', () => console.log('ready'));
