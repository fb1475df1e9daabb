/* essqpv dashboard — plain JavaScript, no build step.
 *
 * The same code runs against the JSON API of `essqpv servir` (data-mode="api") and against
 * the pre-computed JSON files of a site written by `essqpv publier` (data-mode="statique").
 * Only the functions of `source` below know the difference.
 */
(function () {
  "use strict";

  var corps = document.body;
  var MODE = corps.dataset.mode === "statique" ? "statique" : "api";
  var NIVEAUX = ["france", "metropole", "drom", "region", "departement", "epci", "commune", "qpv"];
  var LIB_NIVEAUX = {
    france: "France", metropole: "France métropolitaine", drom: "DROM", region: "Région",
    departement: "Département", epci: "EPCI", commune: "Commune", qpv: "Quartier prioritaire"
  };
  var FAMILLES = {
    association: "Associations", fondation: "Fondations", mutuelle: "Mutuelles",
    cooperative: "Coopératives", societe_commerciale_ess: "Sociétés commerciales de l'ESS"
  };
  var COULEURS = ["#f1f1fb", "#c9c9f2", "#9a9ae5", "#5f5fcc", "#2323a8"];
  var BORNES_METRO = [[41.3, -5.2], [51.1, 9.6]];
  var ZONES = {
    metro: BORNES_METRO,
    "971": [[15.8, -61.9], [16.55, -60.95]],
    "972": [[14.38, -61.25], [14.9, -60.8]],
    "973": [[2.1, -54.6], [5.8, -51.6]],
    "974": [[-21.4, 55.2], [-20.85, 55.85]],
    "976": [[-13.05, 45.0], [-12.6, 45.3]]
  };
  var MAX_POINTS = 5000;
  var TAILLE_LISTE = 20;

  var etat = {
    territoire: corps.dataset.territoire || "FR",
    perimetre: corps.dataset.perimetre || "strict",
    millesime: corps.dataset.millesime || "",
    page: 1,
    enQpv: true,
    indicateurs: null,
    france: null,
    quartiers: [],
    decoupage: null,
    jeton: 0
  };

  // ---------------------------------------------------------------- data sources
  function fichier(code) { return String(code).replace(/:/g, "_"); }
  function q(obj) {
    return Object.keys(obj).filter(function (k) { return obj[k] !== null && obj[k] !== undefined && obj[k] !== ""; })
      .map(function (k) { return encodeURIComponent(k) + "=" + encodeURIComponent(obj[k]); }).join("&");
  }
  var source = {
    indicateurs: function (code) {
      return MODE === "api"
        ? "/api/indicateurs/" + encodeURIComponent(code) + "?" + q({ perimetre: etat.perimetre, millesime: etat.millesime })
        : "donnees/" + etat.millesime + "/" + etat.perimetre + "/indicateurs/" + fichier(code) + ".json";
    },
    quartiers: function (code) {
      return MODE === "api"
        ? "/api/quartiers?" + q({ territoire: code, perimetre: etat.perimetre, millesime: etat.millesime })
        : "donnees/" + etat.millesime + "/" + etat.perimetre + "/quartiers/" + fichier(code) + ".json";
    },
    points: function (code, page) {
      return MODE === "api"
        ? "/api/etablissements?" + q({ territoire: code, perimetre: etat.perimetre, millesime: etat.millesime, en_qpv: "true", page: page, taille: 1000 })
        : (page === 1 ? "donnees/" + etat.millesime + "/" + etat.perimetre + "/points/" + fichier(code) + ".json" : null);
    },
    liste: function (code, page, enQpv) {
      if (MODE === "api") {
        return "/api/etablissements?" + q({ territoire: code, perimetre: etat.perimetre, millesime: etat.millesime, en_qpv: enQpv ? "true" : null, page: page, taille: TAILLE_LISTE });
      }
      return "donnees/" + etat.millesime + "/" + etat.perimetre + "/etablissements/" + fichier(code) + "/qpv-" + page + ".json";
    },
    contours: function (niveau) {
      return MODE === "api" ? "/api/carte/" + niveau : "donnees/carte/" + niveau + ".json";
    },
    contoursQpv: function () {
      return MODE === "api" ? "/api/carte/qpv?" + q({ millesime: etat.millesime }) : "donnees/" + etat.millesime + "/carte/qpv.json";
    },
    evolution: function (code) {
      // the series of the chosen vintage (stored with its publication; strict: the series do not depend on the perimeter)
      return MODE === "api"
        ? "/api/evolution/" + encodeURIComponent(code) + "?" + q({ millesime: etat.millesime })
        : "donnees/" + etat.millesime + "/strict/evolution/" + fichier(code) + ".json";
    },
    initiatives: function (code) {
      return MODE === "api" ? "/api/initiatives?" + q({ territoire: code }) : "donnees/initiatives/" + fichier(code) + ".json";
    },
    telechargements: function (code) {
      if (MODE === "api") {
        return Promise.resolve({
          rapport: "/telecharger/rapport/" + encodeURIComponent(code) + "?" + q({ perimetre: etat.perimetre, millesime: etat.millesime }),
          xlsx: "/telecharger/xlsx/" + encodeURIComponent(code),
          csv: "/telecharger/csv/" + encodeURIComponent(code)
        });
      }
      return lire("donnees/" + etat.millesime + "/telechargements.json").then(function (t) {
        var f = t[code];
        if (!f) { return null; }
        return { rapport: f.rapport && f.rapport[etat.perimetre], xlsx: f.xlsx, csv: f.csv };
      });
    },
    rechercher: function (texte) {
      if (MODE === "api") { return lire("/api/territoires?" + q({ q: texte, limite: 10 })); }
      return lire("donnees/territoires.json").then(function (liste) { return filtrer(liste, texte, 10); });
    },
    page: function (code) {
      var base = MODE === "api" ? "/" : "index.html";
      return base + "?" + q({ territoire: code, perimetre: etat.perimetre === "strict" ? null : etat.perimetre, millesime: etat.millesime });
    }
  };

  var memoire = {};
  function lire(url) {
    if (!memoire[url]) {
      memoire[url] = fetch(url, { headers: { Accept: "application/json" } }).then(function (r) {
        if (!r.ok) {
          return r.json().catch(function () { return {}; }).then(function (corpsErreur) {
            var e = new Error(corpsErreur.erreur || ("Erreur " + r.status + " en lisant les données."));
            e.statut = r.status;
            throw e;
          });
        }
        return r.json();
      });
      memoire[url].catch(function () { delete memoire[url]; });
    }
    return memoire[url];
  }

  function normaliser(texte) {
    return String(texte).normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase()
      .replace(/[-'’]/g, " ").replace(/\s+/g, " ").trim();
  }
  function filtrer(liste, texte, limite) {
    var n = normaliser(texte);
    if (!n) { return []; }
    var trouves = [];
    liste.forEach(function (t) {
      var code = t.code.toLowerCase();
      var court = code.indexOf(":") >= 0 ? code.split(":")[1] : code;
      var nom = t.nom_normalise || (t.nom_normalise = normaliser(t.libelle));
      var rang = null;
      if (code === n || court === n) { rang = 0; }
      else if (nom === n) { rang = 1; }
      else if (nom.indexOf(n) === 0) { rang = 2; }
      else if (court.indexOf(n) === 0) { rang = 3; }
      else if (nom.indexOf(" " + n) >= 0) { rang = 4; }
      else if (nom.indexOf(n) >= 0) { rang = 5; }
      if (rang !== null) { trouves.push([rang, NIVEAUX.indexOf(t.niveau), t.libelle.length, t]); }
    });
    trouves.sort(function (a, b) { return a[0] - b[0] || a[1] - b[1] || a[2] - b[2]; });
    return trouves.slice(0, limite).map(function (x) { return { code: x[3].code, niveau: x[3].niveau, libelle: x[3].libelle }; });
  }

  // ---------------------------------------------------------------- formatting
  var fmtEntier = new Intl.NumberFormat("fr-FR", { maximumFractionDigits: 0 });
  var fmtPart = new Intl.NumberFormat("fr-FR", { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  function estNombre(v) { return typeof v === "number" && isFinite(v); }
  function entier(v) { return estNombre(v) ? fmtEntier.format(v) : "—"; }
  function part(v) { return estNombre(v) ? fmtPart.format(100 * v) + " %" : "—"; }
  function points(v) { return estNombre(v) ? (v > 0 ? "+" : "") + fmtPart.format(v) : "—"; }

  function el(nom, attributs, enfants) {
    var e = document.createElement(nom);
    if (attributs) {
      Object.keys(attributs).forEach(function (k) {
        if (k === "texte") { e.textContent = attributs[k]; }
        else if (k === "classe") { e.className = attributs[k]; }
        else { e.setAttribute(k, attributs[k]); }
      });
    }
    (enfants || []).forEach(function (c) { if (c) { e.appendChild(typeof c === "string" ? document.createTextNode(c) : c); } });
    return e;
  }
  function vider(e) { while (e.firstChild) { e.removeChild(e.firstChild); } return e; }
  function statut(texte, erreur) {
    var s = document.getElementById("statut");
    s.textContent = texte || "";
    s.classList.toggle("erreur", !!erreur);
    s.classList.toggle("discret", !erreur && /^Données affichées/.test(texte || ""));
  }

  function secretDe(ind, tableau, ligne, colonne) {
    var liste = (ind && ind.secret) || [];
    for (var i = 0; i < liste.length; i++) {
      var s = liste[i];
      if (s.tableau === tableau && s.colonne === colonne && (ligne === null || s.ligne === ligne || s.ligne === null || s.ligne === undefined)) {
        return s.statut || "primaire";
      }
    }
    return null;
  }
  // A cell: the formatted value, "s" when suppressed by the statistical secret.
  function cellule(valeur, format, secretLigne, colonne, secretGlobal) {
    var statutSecret = (secretLigne && secretLigne[colonne]) || secretGlobal;
    if ((valeur === null || valeur === undefined) && statutSecret) {
      return el("span", { classe: "secret", title: "Secret statistique (" + statutSecret + ")", texte: "s" });
    }
    return document.createTextNode(format(valeur));
  }

  // ---------------------------------------------------------------- search (ARIA combobox)
  var champ = document.getElementById("recherche-territoire");
  var liste = document.getElementById("suggestions");
  var suggestions = [];
  var actif = -1;
  var minuterie = null;

  function fermer() {
    liste.hidden = true;
    champ.setAttribute("aria-expanded", "false");
    champ.removeAttribute("aria-activedescendant");
    actif = -1;
  }
  function afficherSuggestions(items) {
    suggestions = items;
    vider(liste);
    actif = -1;
    if (!items.length) {
      liste.appendChild(el("li", { role: "option", "aria-disabled": "true", id: "suggestion-vide", texte: "Aucun territoire trouvé" }));
    }
    items.forEach(function (t, i) {
      var li = el("li", { role: "option", id: "suggestion-" + i, "aria-selected": "false", "data-code": t.code }, [
        el("span", { texte: t.libelle }), el("span", { classe: "niveau", texte: (LIB_NIVEAUX[t.niveau] || t.niveau) + " · " + t.code })
      ]);
      li.addEventListener("mousedown", function (e) { e.preventDefault(); });
      li.addEventListener("click", function () { choisir(i); });
      liste.appendChild(li);
    });
    liste.hidden = false;
    champ.setAttribute("aria-expanded", "true");
  }
  function activer(i) {
    var items = liste.querySelectorAll("li[role=option][data-code]");
    if (!items.length) { return; }
    actif = (i + items.length) % items.length;
    items.forEach(function (li, j) { li.setAttribute("aria-selected", j === actif ? "true" : "false"); });
    champ.setAttribute("aria-activedescendant", items[actif].id);
    items[actif].scrollIntoView({ block: "nearest" });
  }
  function choisir(i) {
    var t = suggestions[i];
    if (!t) { return; }
    champ.value = t.libelle;
    fermer();
    charger(t.code, true);
  }
  champ.addEventListener("input", function () {
    clearTimeout(minuterie);
    var texte = champ.value.trim();
    if (!texte) { fermer(); return; }
    minuterie = setTimeout(function () {
      source.rechercher(texte).then(function (items) {
        if (champ.value.trim() === texte) { afficherSuggestions(items); }
      }).catch(function (e) { statut(e.message, true); });
    }, 120);
  });
  champ.addEventListener("keydown", function (e) {
    if (e.key === "ArrowDown") { e.preventDefault(); if (liste.hidden && champ.value.trim()) { champ.dispatchEvent(new Event("input")); } else { activer(actif + 1); } }
    else if (e.key === "ArrowUp") { e.preventDefault(); activer(actif - 1); }
    else if (e.key === "Escape") { fermer(); }
    else if (e.key === "Enter" && !liste.hidden && actif >= 0) { e.preventDefault(); choisir(actif); }
  });
  champ.addEventListener("blur", function () { setTimeout(fermer, 150); });
  document.getElementById("form-recherche").addEventListener("submit", function (e) {
    e.preventDefault();
    var texte = champ.value.trim();
    if (!texte) { return; }
    source.rechercher(texte).then(function (items) {
      if (items.length) { champ.value = items[0].libelle; fermer(); charger(items[0].code, true); }
      else { statut("Aucun territoire ne correspond à « " + texte + " ».", true); }
    }).catch(function (err) { statut(err.message, true); });
  });

  document.getElementById("choix-perimetre").addEventListener("change", function (e) {
    etat.perimetre = e.target.value; charger(etat.territoire, true);
  });
  document.getElementById("choix-millesime").addEventListener("change", function (e) {
    etat.millesime = e.target.value; charger(etat.territoire, true);
  });
  document.getElementById("choix-decoupage").addEventListener("change", function (e) {
    etat.decoupage = e.target.value; dessinerFond();
  });
  document.getElementById("seulement-qpv").addEventListener("change", function (e) {
    etat.enQpv = e.target.checked; etat.page = 1; chargerListe();
  });
  document.getElementById("page-precedente").addEventListener("click", function () {
    if (etat.page > 1) { etat.page -= 1; chargerListe(); }
  });
  document.getElementById("page-suivante").addEventListener("click", function () {
    etat.page += 1; chargerListe();
  });
  Array.prototype.forEach.call(document.querySelectorAll(".zones button"), function (b) {
    b.setAttribute("aria-pressed", "false");
    b.addEventListener("click", function () { centrer(b.dataset.zone); });
  });

  // ---------------------------------------------------------------- loading a territory
  function charger(code, pousser) {
    var jeton = ++etat.jeton;
    statut("Chargement des données…");
    return Promise.all([
      lire(source.indicateurs(code)),
      lire(source.indicateurs("FR")),
      lire(source.quartiers(code))
    ]).then(function (r) {
      if (jeton !== etat.jeton) { return; }
      etat.indicateurs = r[0];
      etat.france = r[1];
      etat.quartiers = (r[2] && r[2].quartiers) || [];
      etat.territoire = r[0].territoire.code;
      etat.page = 1;
      if (pousser) { history.pushState({ territoire: etat.territoire }, "", source.page(etat.territoire)); }
      afficher();
      statut("Données affichées : " + r[0].territoire.libelle + ".");
    }).catch(function (e) {
      if (jeton === etat.jeton) { statut(e.message, true); }
    });
  }
  window.addEventListener("popstate", function () {
    var p = new URLSearchParams(location.search);
    etat.perimetre = p.get("perimetre") || "strict";
    etat.millesime = p.get("millesime") || etat.millesime;
    charger(p.get("territoire") || "FR", false);
  });

  function afficher() {
    var ind = etat.indicateurs;
    var t = ind.territoire;
    document.title = t.libelle + " — Observatoire de l'ESS dans les quartiers prioritaires";
    document.getElementById("titre-territoire").textContent = t.libelle;
    document.getElementById("sous-titre").textContent = (LIB_NIVEAUX[t.niveau] || t.niveau) + " · " + t.code +
      " — millésime " + ind.millesime + ", géographie des quartiers " + ind.geographie_qpv +
      ", périmètre " + (ind.perimetre === "strict" ? "strict" : "quartier + " + ind.perimetre.replace("m", " m"));
    document.getElementById("choix-perimetre").value = etat.perimetre;
    var lienJson = MODE === "api" ? source.indicateurs(t.code) : source.indicateurs(t.code);
    document.getElementById("lien-json").setAttribute("href", lienJson);
    document.getElementById("lien-json-indicateurs").setAttribute("href", lienJson);
    afficherAriane(t);
    afficherTuiles(ind, etat.france);
    afficherSecteurs(ind);
    afficherFamilles(ind);
    afficherQuartiers();
    afficherCarte();
    chargerListe();
    afficherTelechargements(t.code);
    afficherInitiatives(t.code);
    afficherEvolution(t.code);
    // other panels (transition.js) follow the territory shown
    corps.dispatchEvent(new CustomEvent("essqpv:territoire", { detail: { code: t.code, niveau: t.niveau, millesime: ind.millesime } }));
  }

  function lienTerritoire(code, libelle) {
    var a = el("a", { href: source.page(code), texte: libelle });
    a.addEventListener("click", function (e) {
      if (e.ctrlKey || e.metaKey || e.shiftKey) { return; }
      e.preventDefault(); charger(code, true);
    });
    return a;
  }

  function afficherAriane(t) {
    var ol = vider(document.getElementById("ariane"));
    ol.appendChild(el("li", {}, [lienTerritoire("FR", "France")]));
    var q0 = etat.quartiers[0];
    if (q0 && ["epci", "commune", "qpv"].indexOf(t.niveau) >= 0 && q0.departement) {
      ol.appendChild(el("li", {}, [lienTerritoire("DEP:" + q0.departement, "Département " + q0.departement)]));
    }
    if (t.code !== "FR") { ol.appendChild(el("li", { "aria-current": "page", texte: t.libelle })); }
  }

  // ---------------------------------------------------------------- tiles
  var TUILES = [
    { cle: "etablissements_employeurs", titre: "Établissements employeurs de l'ESS en quartier prioritaire", format: entier },
    { cle: "salaries", titre: "Salariés de l'ESS en quartier prioritaire", format: entier },
    { cle: "part_emploi_ess_en_qpv", titre: "Part de l'emploi ESS du territoire située en quartier prioritaire", format: part },
    { cle: "part_associations", titre: "Part des associations parmi les employeurs en quartier prioritaire", format: part },
    { cle: "non_employeurs_en_qpv", titre: "Établissements de l'ESS sans salarié en quartier prioritaire", format: entier, racine: true },
    { cle: "part_femmes", titre: "Part des femmes parmi les salariés", format: part },
    { cle: "part_cdi", titre: "Part des CDI", format: part },
    { cle: "part_contrats_aides", titre: "Part des contrats aidés", format: part },
    { cle: "part_temps_complet", titre: "Part des temps complets", format: part }
  ];
  function valeurTuile(ind, def) {
    if (!ind) { return undefined; }
    return def.racine ? ind[def.cle] : (ind.chiffres_cles || {})[def.cle];
  }
  function afficherTuiles(ind, fr) {
    var zone = vider(document.getElementById("tuiles"));
    var ck = ind.chiffres_cles || {};
    TUILES.forEach(function (def) {
      var v = valeurTuile(ind, def);
      if (v === undefined) { return; }
      var secret = v === null ? secretDe(ind, "chiffres_cles", null, def.cle) : null;
      var valeur = el("dd", { classe: "valeur", "data-valeur": v === null ? "" : String(v) });
      if (secret) { valeur.appendChild(el("span", { classe: "secret", title: "Secret statistique (" + secret + ")", texte: "s" })); }
      else { valeur.textContent = def.format(v); }
      var enfants = [el("dt", { texte: def.titre }), valeur];
      if (def.cle === "salaries" && ck.estime) { enfants.push(el("dd", { classe: "estime", texte: "estimation d'après les tranches d'effectif" })); }
      if (fr && ind.territoire.code !== "FR") {
        var vf = valeurTuile(fr, def);
        enfants.push(el("dd", { classe: "comparaison", texte: "France : " + (vf === null || vf === undefined ? "—" : def.format(vf)) }));
      } else if (ind.territoire.code === "FR") {
        enfants.push(el("dd", { classe: "comparaison", texte: "Référence nationale" }));
      }
      zone.appendChild(el("dl", { classe: "tuile", "data-cle": def.cle }, enfants));
    });
    var av = vider(document.getElementById("avertissements"));
    (ind.avertissements || []).forEach(function (a) {
      av.appendChild(el("li", { texte: typeof a === "string" ? a : (a.message || JSON.stringify(a)) }));
    });
  }

  // ---------------------------------------------------------------- sectors
  function afficherSecteurs(ind) {
    var lignes = ind.tableau_secteurs || [];
    var corpsTable = vider(document.querySelector("#table-secteurs tbody"));
    lignes.forEach(function (l) {
      var s = l.secret || {};
      var tr = el("tr", { classe: l.secteur === "Ensemble" ? "ensemble" : "" }, [
        el("th", { scope: "row", texte: l.secteur }),
        el("td", { classe: "nombre" }, [cellule(l.salaries_qpv, entier, s, "salaries_qpv")]),
        el("td", { classe: "nombre" }, [cellule(l.part_qpv, part, s, "part_qpv")]),
        el("td", { classe: "nombre" }, [cellule(l.part_france, part, s, "part_france")]),
        el("td", { classe: "nombre" }, [cellule(l.ecart_points, points, s, "ecart_points")])
      ]);
      corpsTable.appendChild(tr);
    });
    dessinerGraphique(lignes.filter(function (l) { return l.secteur !== "Ensemble"; }));
  }
  function svg(nom, attributs) {
    var e = document.createElementNS("http://www.w3.org/2000/svg", nom);
    Object.keys(attributs || {}).forEach(function (k) {
      if (k === "texte") { e.textContent = attributs[k]; } else { e.setAttribute(k, attributs[k]); }
    });
    return e;
  }
  function dessinerGraphique(lignes) {
    var zone = vider(document.getElementById("graphique-secteurs"));
    var largeur = 820, gauche = 300, hLigne = 36, haut = 30;
    var hauteur = haut + lignes.length * hLigne + 10;
    var max = 0;
    lignes.forEach(function (l) { max = Math.max(max, l.part_qpv || 0, l.part_france || 0); });
    max = max > 0 ? max : 1;
    var echelle = (largeur - gauche - 60) / max;
    var s = svg("svg", { viewBox: "0 0 " + largeur + " " + hauteur, role: "img", "aria-label": "Graphique des parts de salariés par secteur (voir le tableau)" });
    s.appendChild(svg("rect", { x: gauche, y: 6, width: 12, height: 12, "class": "barre-qpv" }));
    s.appendChild(svg("text", { x: gauche + 16, y: 16, "class": "lib", texte: "Quartiers prioritaires du territoire" }));
    s.appendChild(svg("rect", { x: gauche + 250, y: 6, width: 12, height: 12, "class": "barre-france" }));
    s.appendChild(svg("text", { x: gauche + 266, y: 16, "class": "lib", texte: "France entière" }));
    lignes.forEach(function (l, i) {
      var y = haut + i * hLigne;
      var mots = l.secteur.split(" "), lignesLib = [""];
      mots.forEach(function (m) {
        var courante = lignesLib[lignesLib.length - 1];
        if ((courante + " " + m).length > 40 && courante) { lignesLib.push(m); } else { lignesLib[lignesLib.length - 1] = (courante ? courante + " " : "") + m; }
      });
      lignesLib.forEach(function (texte, j) {
        s.appendChild(svg("text", { x: gauche - 8, y: y + 19 + (j - (lignesLib.length - 1) / 2) * 13, "text-anchor": "end", "class": "lib", texte: texte }));
      });
      [["part_qpv", "barre-qpv", 2], ["part_france", "barre-france", 16]].forEach(function (b) {
        var v = l[b[0]];
        var w = estNombre(v) ? Math.max(v * echelle, v > 0 ? 1 : 0) : 0;
        s.appendChild(svg("rect", { x: gauche, y: y + b[2], width: w, height: 13, "class": b[1] }));
        s.appendChild(svg("text", { x: gauche + w + 4, y: y + b[2] + 11, "class": "val", texte: estNombre(v) ? part(v) : (l.secret && l.secret[b[0]] ? "s" : "—") }));
      });
    });
    zone.appendChild(s);
  }

  // ---------------------------------------------------------------- families
  function afficherFamilles(ind) {
    var fam = ind.familles_en_qpv || {};
    var emp = fam.employeurs || {}, non = fam.non_employeurs || {};
    var parts = (ind.chiffres_cles || {}).parts_familles || {};
    var tbody = vider(document.querySelector("#table-familles tbody"));
    Object.keys(FAMILLES).forEach(function (f) {
      tbody.appendChild(el("tr", {}, [
        el("th", { scope: "row", texte: FAMILLES[f] }),
        el("td", { classe: "nombre", texte: entier(emp[f]) }),
        el("td", { classe: "nombre", texte: part(parts[f]) }),
        el("td", { classe: "nombre", texte: entier(non[f]) })
      ]));
    });
  }

  // ---------------------------------------------------------------- QPV list
  function afficherQuartiers() {
    var tbody = vider(document.querySelector("#table-quartiers tbody"));
    if (!etat.quartiers.length) {
      tbody.appendChild(el("tr", {}, [el("td", { colspan: "5", texte: "Aucun quartier prioritaire dans ce territoire." })]));
      return;
    }
    etat.quartiers.slice().sort(function (a, b) { return (b.etablissements_employeurs || 0) - (a.etablissements_employeurs || 0) || (a.code_qp < b.code_qp ? -1 : 1); })
      .forEach(function (r) {
        var voir = el("button", { type: "button", classe: "petit", "aria-label": "Montrer " + r.nom_qp + " sur la carte", texte: "voir sur la carte" });
        voir.addEventListener("click", function () { montrerQuartier(r.code_qp, true); });
        tbody.appendChild(el("tr", { "data-qpv": r.code_qp }, [
          el("th", { scope: "row" }, [lienTerritoire("QPV:" + r.code_qp, r.nom_qp), " ", voir]),
          el("td", { texte: r.code_qp }),
          el("td", { classe: "nombre", texte: entier(r.etablissements_employeurs) }),
          el("td", { classe: "nombre", texte: entier(r.non_employeurs) }),
          el("td", { classe: "nombre" }, [cellule(r.salaries, entier, r.secret, "salaries")])
        ]));
      });
  }

  // ---------------------------------------------------------------- map
  var carte = null, coucheFond = null, coucheQpv = null, couchePoints = null, couchesQpv = {};
  function initCarte() {
    if (carte || !window.L) { return carte; }
    carte = L.map("carte", { zoomSnap: 0.25, minZoom: 2, maxZoom: 17, attributionControl: true, keyboard: true });
    carte.attributionControl.setPrefix(false);
    carte.attributionControl.addAttribution("Contours : IGN, INSEE, ANCT — Licence Ouverte ; établissements : INSEE Sirene");
    carte.fitBounds(BORNES_METRO);
    return carte;
  }
  window.essqpvCarte = initCarte;  // for adresses.js
  function centrer(zone) {
    if (!carte) { return; }
    Array.prototype.forEach.call(document.querySelectorAll(".zones button"), function (b) {
      b.setAttribute("aria-pressed", b.dataset.zone === zone ? "true" : "false");
    });
    if (zone === "territoire") { cadrerTerritoire(); } else if (ZONES[zone]) { carte.fitBounds(ZONES[zone]); }
  }
  function valeursFond(decoupage) {
    var valeurs = {};
    etat.quartiers.forEach(function (r) {
      var c = decoupage === "regions" ? r.region : r.departement;
      if (c === null || c === undefined) { return; }
      valeurs[c] = (valeurs[c] || 0) + (r.etablissements_employeurs || 0);
    });
    return valeurs;
  }
  // Lower bounds of at most five classes (quantiles of the non-zero values, distinct).
  function classes(valeurs) {
    var v = Object.keys(valeurs).map(function (k) { return valeurs[k]; }).filter(function (x) { return x > 0; }).sort(function (a, b) { return a - b; });
    var bornes = [];
    for (var i = 0; i < 5 && v.length; i++) {
      var b = v[Math.min(v.length - 1, Math.floor(i * v.length / 5))];
      if (bornes.indexOf(b) < 0) { bornes.push(b); }
    }
    return bornes;
  }
  function classeDe(x, bornes) {
    if (!(x > 0) || !bornes.length) { return -1; }
    var i = 0;
    while (i + 1 < bornes.length && x >= bornes[i + 1]) { i++; }
    return i + (5 - bornes.length);
  }
  function dessinerFond() {
    if (!carte) { return Promise.resolve(); }
    var decoupage = etat.decoupage;
    document.getElementById("choix-decoupage").value = decoupage;
    return lire(source.contours(decoupage)).then(function (geo) {
      if (decoupage !== etat.decoupage) { return; }
      var niveau = etat.indicateurs.territoire.niveau;
      var choroplethe = ["france", "metropole", "drom", "region"].indexOf(niveau) >= 0;
      var valeurs = valeursFond(decoupage);
      var bornes = choroplethe ? classes(valeurs) : [];
      document.getElementById("choix-decoupage").disabled = !choroplethe;
      if (coucheFond) { carte.removeLayer(coucheFond); }
      coucheFond = L.geoJSON(geo, {
        style: function (f) {
          var k = classeDe(valeurs[f.properties.code], bornes);
          if (!choroplethe) {
            return { color: "#555", weight: 1, fillOpacity: 1, fillColor: valeurs[f.properties.code] ? "#eef0fb" : "#ffffff", className: "zone zone-" + f.properties.code };
          }
          return { color: "#555", weight: 0.8, fillOpacity: 0.85, fillColor: k < 0 ? "#ffffff" : COULEURS[k], className: "zone zone-" + f.properties.code };
        },
        onEachFeature: function (f, couche) {
          var v = valeurs[f.properties.code];
          couche.bindTooltip(f.properties.nom + " : " + (v ? entier(v) : "0") + " employeurs ESS en QPV", { sticky: true });
        }
      }).addTo(carte);
      coucheFond.bringToBack();
      legende(bornes, decoupage, choroplethe);
    });
  }
  function legende(bornes, decoupage, choroplethe) {
    var l = vider(document.getElementById("legende"));
    if (choroplethe) {
      l.appendChild(el("span", { texte: "Employeurs ESS en QPV par " + (decoupage === "regions" ? "région" : "département") + " : " }));
    } else { bornes = []; }
    if (choroplethe) { l.appendChild(el("span", {}, [el("span", { classe: "case cvide" }), "aucun"])); }
    bornes.forEach(function (b, i) {
      var haut = i + 1 < bornes.length ? bornes[i + 1] - 1 : null;
      var lib = haut === null ? entier(b) + " et plus" : (haut === b ? entier(b) : entier(b) + " à " + entier(haut));
      if (bornes.length === 1) { lib = entier(b); }
      l.appendChild(el("span", {}, [el("span", { classe: "case c" + (i + 5 - bornes.length) }), lib]));
    });
    l.appendChild(el("span", {}, [el("span", { classe: "case qpv" }), "quartier prioritaire"]));
    l.appendChild(el("span", {}, [el("span", { classe: "point" }), "établissement de l'ESS"]));
  }
  function afficherCarte() {
    if (!initCarte()) { return; }
    var debut = Date.now();
    var niveau = etat.indicateurs.territoire.niveau;
    etat.decoupage = ["france", "metropole", "drom"].indexOf(niveau) >= 0 ? (etat.decoupage || "regions") : "departements";
    var fiche = document.getElementById("fiche-quartier");
    fiche.hidden = true;
    dessinerFond().then(function () { return lire(source.contoursQpv()); }).then(function (geo) {
      var codes = {};
      etat.quartiers.forEach(function (r) { codes[r.code_qp] = r; });
      if (coucheQpv) { carte.removeLayer(coucheQpv); }
      couchesQpv = {};
      coucheQpv = L.geoJSON(geo, {
        filter: function (f) { return !!codes[f.properties.code]; },
        style: function (f) {
          return { color: "#c9191e", weight: 2, fillColor: "#c9191e", fillOpacity: 0.25, className: "qpv qpv-" + f.properties.code };
        },
        onEachFeature: function (f, couche) {
          couchesQpv[f.properties.code] = couche;
          couche.on("click", function () { montrerQuartier(f.properties.code, false); });
        }
      }).addTo(carte);
      // an address answered while the territory was loading keeps the map on its point
      if (!(Number(document.getElementById("carte").dataset.adresseA) >= debut)) { cadrerTerritoire(); }
      if (niveau === "qpv") { montrerQuartier(etat.indicateurs.territoire.code.replace(/^QPV:/, ""), false, true); }
      return chargerPoints(etat.indicateurs.territoire.code);
    }).catch(function (e) { statut(e.message, true); });
  }
  function cadrerTerritoire() {
    var t = etat.indicateurs.territoire;
    if (["france", "metropole"].indexOf(t.niveau) >= 0) { carte.fitBounds(BORNES_METRO); return; }
    if (coucheQpv && coucheQpv.getLayers().length) {
      carte.fitBounds(coucheQpv.getBounds(), { padding: [20, 20], maxZoom: 15 });
      return;
    }
    var court = t.code.split(":")[1];
    if (coucheFond) {
      var trouve = null;
      coucheFond.eachLayer(function (c) { if (c.feature.properties.code === court) { trouve = c; } });
      if (trouve) { carte.fitBounds(trouve.getBounds()); return; }
    }
    carte.fitBounds(BORNES_METRO);
  }
  function montrerQuartier(code, zoomer, sansFocus) {
    var r = null;
    etat.quartiers.forEach(function (x) { if (x.code_qp === code) { r = x; } });
    if (!r) { return; }
    var couche = couchesQpv[code];
    if (couche && zoomer) { carte.fitBounds(couche.getBounds(), { maxZoom: 15, padding: [30, 30] }); }
    var fiche = vider(document.getElementById("fiche-quartier"));
    fiche.setAttribute("data-qpv", code);
    var voir = lienTerritoire("QPV:" + code, "Afficher tous les indicateurs de ce quartier");
    fiche.appendChild(el("h3", { texte: r.nom_qp + " (" + code + ")" }));
    fiche.appendChild(el("dl", {}, [
      el("dt", { texte: "Établissements employeurs de l'ESS" }), el("dd", { classe: "qpv-employeurs", texte: entier(r.etablissements_employeurs) }),
      el("dt", { texte: "Établissements sans salarié" }), el("dd", { texte: entier(r.non_employeurs) }),
      el("dt", { texte: "Salariés" }), el("dd", {}, [cellule(r.salaries, entier, r.secret, "salaries")]),
      el("dt", { texte: "Département" }), el("dd", { texte: r.departement || "—" })
    ]));
    fiche.appendChild(el("p", {}, [voir]));
    fiche.hidden = false;
    if (couche) {
      couche.bindPopup(r.nom_qp + " — " + entier(r.etablissements_employeurs) + " employeurs ESS").openPopup();
    }
    if (!sansFocus) { fiche.focus({ preventScroll: true }); }
  }
  function chargerPoints(code) {
    var jeton = etat.jeton;
    if (couchePoints) { carte.removeLayer(couchePoints); couchePoints = null; }
    var tous = [];
    function page(n) {
      var url = source.points(code, n);
      if (!url) { return Promise.resolve(); }
      return lire(url).then(function (r) {
        tous = tous.concat(r.etablissements || []);
        if (tous.length < Math.min(r.total || 0, MAX_POINTS) && (r.etablissements || []).length === r.taille) { return page(n + 1); }
        etat.totalPoints = r.total;
      });
    }
    return page(1).then(function () {
      if (jeton !== etat.jeton || !window.L) { return; }
      couchePoints = L.markerClusterGroup ? L.markerClusterGroup({ showCoverageOnHover: false, maxClusterRadius: 45, chunkedLoading: true }) : L.layerGroup();
      tous.forEach(function (e) {
        if (!estNombre(e.lon) || !estNombre(e.lat)) { return; }
        var m = L.circleMarker([e.lat, e.lon], { radius: 6, color: "#fff", weight: 1.5, fillColor: "#0063cb", fillOpacity: 1, className: "point-ess" });
        m.bindPopup(function () {
          return el("div", {}, [el("strong", { texte: e.denomination || e.siret }), el("br"), "SIRET " + e.siret, el("br"),
            (FAMILLES[e.famille] || e.famille || "") + " — " + (e.secteur || ""), el("br"), "Quartier : " + (e.qpv || "—")]);
        });
        couchePoints.addLayer(m);
      });
      couchePoints.addTo(carte);
    });
  }

  // ---------------------------------------------------------------- establishments list
  function chargerListe() {
    var code = etat.indicateurs.territoire.code;
    var tbody = vider(document.querySelector("#table-etablissements tbody"));
    var url = source.liste(code, etat.page, etat.enQpv);
    lire(url).then(function (r) {
      vider(tbody);
      (r.etablissements || []).forEach(function (e) {
        tbody.appendChild(el("tr", {}, [
          el("td", { texte: e.denomination || "—" }), el("td", { texte: e.siret }),
          el("td", { texte: FAMILLES[e.famille] || e.famille || "—" }), el("td", { texte: e.secteur || "—" }),
          el("td", { texte: e.commune || "—" }), el("td", { texte: e.qpv || "—" })
        ]));
      });
      var pages = Math.max(1, Math.ceil((r.total || 0) / (r.taille || TAILLE_LISTE)));
      var limite = r.pages_publiees && r.pages_publiees < pages ? " (les " + entier(r.pages_publiees) + " premières pages sont publiées)" : "";
      if (r.pages_publiees) { pages = Math.min(pages, r.pages_publiees); }
      document.getElementById("pagination-etat").textContent = "Page " + etat.page + " sur " + pages + " — " + entier(r.total || 0) + " établissements" + limite;
      document.getElementById("page-precedente").disabled = etat.page <= 1;
      document.getElementById("page-suivante").disabled = etat.page >= pages;
    }).catch(function (e) {
      document.getElementById("pagination-etat").textContent = e.statut === 404 ? "Liste non publiée pour ce territoire." : e.message;
      document.getElementById("page-precedente").disabled = true;
      document.getElementById("page-suivante").disabled = true;
    });
  }

  // ---------------------------------------------------------------- downloads, initiatives
  function afficherTelechargements(code) {
    var liens = { rapport: document.getElementById("lien-rapport"), xlsx: document.getElementById("lien-excel"), csv: document.getElementById("lien-csv") };
    source.telechargements(code).catch(function () { return null; }).then(function (f) {
      document.getElementById("telechargements-absents").hidden = !!f;
      Object.keys(liens).forEach(function (k) {
        var a = liens[k];
        if (f && f[k]) { a.setAttribute("href", f[k]); a.removeAttribute("aria-disabled"); a.hidden = false; }
        else { a.removeAttribute("href"); a.setAttribute("aria-disabled", "true"); a.hidden = true; }
      });
    });
  }
  function afficherInitiatives(code) {
    var bloc = document.getElementById("bloc-initiatives");
    if (corps.dataset.initiatives !== "oui") { bloc.hidden = true; return; }
    lire(source.initiatives(code)).then(function (items) {
      items = Array.isArray(items) ? items : (items.initiatives || []);
      var ul = vider(document.getElementById("liste-initiatives"));
      items.slice(0, 60).forEach(function (i) {
        var details = [i.nom_commune, i.qpv ? "quartier " + i.qpv : null, i.libelle_modele].filter(function (x) { return x; }).join(" · ");
        var besoins = (i.libelles_categories || []).join(", ");
        ul.appendChild(el("li", {}, [
          el("strong", { texte: i.nom || "Initiative" }), el("br"), details,
          besoins ? el("p", { classe: "aide", texte: "Besoins : " + besoins }) : null,
          i.description ? el("p", { texte: i.description }) : null,
          /^https?:\/\//.test(i.site_web || "") ? el("a", { href: i.site_web, rel: "noopener", texte: "Site internet" }) : null
        ]));
      });
      bloc.hidden = !items.length;
    }).catch(function () { bloc.hidden = true; });
  }

  // ---------------------------------------------------------------- series since 2008
  function afficherEvolution(code) {
    var bloc = document.getElementById("bloc-evolution");
    if (corps.dataset.evolution !== "oui") { bloc.hidden = true; return; }
    lire(source.evolution(code)).then(function (s) {
      if (!s || !s.points) { bloc.hidden = true; return; }
      function n(v) { return estNombre(v) ? entier(v) : "s"; }
      document.getElementById("evolution-geographie").textContent =
        "Géographie des quartiers " + s.geographie_qpv + ", fixe sur toute la série ; position de chaque établissement : celle du millésime " +
        s.millesime + "." + (s.synthetique ? " Données synthétiques de démonstration — ne pas citer." : "");
      var corpsTable = vider(document.querySelector("#table-evolution tbody"));
      var annees = s.flux.annees;
      s.points.forEach(function (p, i) {
        var an = /-01-01$/.test(p) ? parseInt(p.slice(0, 4), 10) : null;
        var k = an === null ? -1 : annees.indexOf(an);
        var pl = s.part_localisee[i];
        corpsTable.appendChild(el("tr", {}, [
          el("th", { scope: "row", texte: an === null ? "millésime " + p : String(an) }),
          el("td", { classe: "nombre", texte: n(s.qpv.etablissements[i]) }),
          el("td", { classe: "nombre", texte: n(s.qpv.employeurs[i]) }),
          el("td", { classe: "nombre", texte: s.ensemble ? n(s.ensemble.etablissements[i]) : "—" }),
          el("td", { classe: "nombre", texte: estNombre(pl) ? part(pl) : "s" }),
          el("td", { classe: "nombre", texte: n(s.france.etablissements[i]) }),
          el("td", { classe: "nombre", texte: k >= 0 ? n(s.flux.qpv.creations[k]) : "" }),
          el("td", { classe: "nombre", texte: k >= 0 ? n(s.flux.qpv.fermetures[k]) : "" })
        ]));
      });
      dessinerEvolution(s);
      bloc.hidden = false;
    }).catch(function () { bloc.hidden = true; });
  }
  function dessinerEvolution(s) {
    var boite = vider(document.getElementById("graphique-evolution"));
    var ind = s.indice_2015 || {};
    var series = [];
    if (ind.qpv && ind.france) {
      series = [{ v: ind.qpv, c: "#1b5e7a", l: "QPV du territoire (indice 2015 = 100)" },
                { v: ind.france, c: "#9aa5ad", l: "France entière (indice 2015 = 100)" }];
    } else {
      series = [{ v: s.qpv.etablissements, c: "#1b5e7a", l: "Établissements en QPV" }];
    }
    var valeurs = [];
    series.forEach(function (x) { x.v.forEach(function (v) { if (estNombre(v)) { valeurs.push(v); } }); });
    if (!valeurs.length) { return; }
    var L = 640, H = 220, g = 48, d = 12, h = 16, b = 36;
    var min = Math.min.apply(null, valeurs), max = Math.max.apply(null, valeurs);
    if (max === min) { max = min + 1; }
    var nb = s.points.length;
    function X(i) { return g + (L - g - d) * (nb > 1 ? i / (nb - 1) : 0); }
    function Y(v) { return h + (H - h - b) * (1 - (v - min) / (max - min)); }
    var NS = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", "0 0 " + L + " " + H);
    svg.setAttribute("class", "courbe-evolution");
    function ajouter(nom, attrs, texte) {
      var e = document.createElementNS(NS, nom);
      Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
      if (texte) { e.textContent = texte; }
      svg.appendChild(e);
      return e;
    }
    [min, (min + max) / 2, max].forEach(function (v) {
      ajouter("line", { x1: g, x2: L - d, y1: Y(v), y2: Y(v), stroke: "#dddddd" });
      ajouter("text", { x: g - 4, y: Y(v) + 3, "text-anchor": "end", "font-size": 10 }, entier(v));
    });
    s.points.forEach(function (p, i) {
      if (i % 2 === 0 || i === nb - 1) {
        ajouter("text", { x: X(i), y: H - b + 14, "text-anchor": "middle", "font-size": 10 }, /-01-01$/.test(p) ? p.slice(0, 4) : p);
      }
    });
    series.forEach(function (x, j) {
      var morceaux = [], courant = [];
      x.v.forEach(function (v, i) {
        if (estNombre(v)) { courant.push(X(i).toFixed(1) + "," + Y(v).toFixed(1)); }
        else if (courant.length) { morceaux.push(courant); courant = []; }
      });
      if (courant.length) { morceaux.push(courant); }
      morceaux.forEach(function (m) {
        ajouter("polyline", { points: m.join(" "), fill: "none", stroke: x.c, "stroke-width": 2 });
      });
      ajouter("text", { x: g + 6, y: h + 12 + 13 * j, fill: x.c, "font-size": 11 }, x.l);
    });
    boite.appendChild(svg);
  }

  // ---------------------------------------------------------------- start
  var depart = new URLSearchParams(location.search);
  if (MODE === "statique") {
    // A published site lists the establishments in QPV only.
    document.getElementById("seulement-qpv").disabled = true;
    document.getElementById("seulement-qpv").parentNode.hidden = true;
  }
  if (MODE === "statique") {
    etat.perimetre = depart.get("perimetre") || etat.perimetre;
    etat.millesime = depart.get("millesime") || etat.millesime;
  }
  if (MODE === "statique" && depart.get("territoire")) {
    // A code or a name typed in the search box without JavaScript: resolve it here.
    var demande = depart.get("territoire");
    lire("donnees/territoires.json").then(function (tous) {
      var exact = tous.filter(function (t) { return t.code === demande.toUpperCase(); })[0];
      var t = exact || filtrer(tous, demande, 1)[0];
      if (t) { charger(t.code, false); } else { statut("Territoire inconnu : « " + demande + " ».", true); charger("FR", false); }
    });
  } else {
    charger(etat.territoire, false);
  }
})();
