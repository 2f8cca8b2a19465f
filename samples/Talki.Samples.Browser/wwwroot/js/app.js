// Small browser helpers of the Talki sample: Google Identity Services (loaded only when a client id is configured) and copy to clipboard.
window.talkiApp = {
  renderGoogleButton: (element, clientId, dotnet) => new Promise((resolve) => {
    const init = () => {
      try {
        google.accounts.id.initialize({
          client_id: clientId,
          callback: (response) => dotnet.invokeMethodAsync('OnGoogleCredential', response.credential),
        });
        google.accounts.id.renderButton(element, { theme: 'filled_black', size: 'large', shape: 'pill', text: 'signin_with', width: 280 });
        resolve(true);
      } catch {
        resolve(false);
      }
    };
    if (window.google && window.google.accounts && window.google.accounts.id) {
      init();
      return;
    }
    const script = document.createElement('script');
    script.src = 'https://accounts.google.com/gsi/client';
    script.async = true;
    script.onload = init;
    script.onerror = () => resolve(false);
    document.head.appendChild(script);
  }),
  copy: async (text) => {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      return false;
    }
  },
};
window.talkiApp.selectRoomLink = () => {
  const element = document.querySelector('[data-testid="room-link"]');
  if (!element) return;
  const range = document.createRange();
  range.selectNodeContents(element);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
};
// Whether this browser signed in here and has not signed out since: a signed-out page load then skips the session
// lookup, whose 401 the browser would log as a console error. The session itself stays the server's HttpOnly cookie.
window.talkiApp.sessionHint = {
  get: () => { try { return localStorage.getItem('talki.signedIn') === '1'; } catch { return true; } },
  set: (signedIn) => { try { if (signedIn) localStorage.setItem('talki.signedIn', '1'); else localStorage.removeItem('talki.signedIn'); } catch { } },
};
